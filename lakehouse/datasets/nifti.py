"""One series as one NIfTI-1 volume (.nii.gz) with a sidecar mapping slice index -> SOP Instance UID.

Converter: numpy stacks the voxels, nibabel (the reference NIfTI library in Python, and already
a test dependency) writes the header, and the geometry is ours, from the DICOM attributes of every
frame (classic and enhanced multi-frame objects alike, see ``frames``). dcm2niix is the
reference converter, but it is a separate binary that reads files from disk and applies its own
naming and merging rules; converting the datasets the build already holds keeps one read per
object, our refusal codes and our slice -> SOP map. Its output is checked against dcm2niix's in
the tests and timed against it in ``tests/benchmarks/bench_dataset.py``.

Geometry (PS3.3 C.7.6.2.1.1): the slice normal is row x column direction cosines; slices are
ordered by their position along it, never by Instance Number or file order; the slice spacing
is the mean gap between positions, never Slice Thickness. Refused, with ``Unconvertible`` codes:
``not_an_image``, ``not_grayscale``, ``missing_geometry``, ``mixed_shape``, ``mixed_orientation``,
``mixed_pixel_spacing``, ``duplicate_position``, ``non_uniform_spacing``, ``gantry_tilt``,
``undecodable_pixels``; tolerances below.

Voxels: the Modality LUT (rescale, or a Modality LUT table) is applied. They are stored as
int16 when every slope and intercept is an integer and the values fit (CT in HU, most MR), else
float32; either way scl_slope = 1 and scl_inter = 0, so raw and scaled reads agree. The affine is NIfTI RAS
(DICOM LPS with x and y negated), written as both sform and qform (code 1, scanner).
Bytes are deterministic: gzip with mtime 0 and no file name, nothing time-dependent in the header.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nibabel
import numpy as np
import pydicom

import lakehouse
from lakehouse.datasets.frames import (
    FrameAttributes,
    decode_frame,
    frame_count,
    has_pixels,
    is_color,
    modality_values,
)
from lakehouse.datasets.model import Unconvertible

ORIENTATION_TOLERANCE = 1e-3  # max difference of any direction cosine between slices
PIXEL_SPACING_TOLERANCE = 1e-3  # relative difference of Pixel Spacing between slices
SPACING_TOLERANCE = 0.01  # every gap between slice positions within 1% of the mean gap
DUPLICATE_TOLERANCE_MM = 1e-3  # slices closer than this along the normal share a position
TILT_TOLERANCE = math.tan(math.radians(0.1))  # in-plane drift per mm along the normal (0.1 degree)
TILT_FLOOR_MM = 0.01  # in-plane drift below this is rounding in the positions, not tilt
# gzip level 1, as nibabel writes by default: on CT it is 5-7x faster than level 6 for 1-3% more
# bytes (noise does not compress at any level; bench_dataset.py measures it).
GZIP_LEVEL = 1
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class NiftiResult:
    image: bytes  # .nii.gz, deterministic
    sidecar: dict[str, Any]  # JSON-able
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _Slice:
    dataset: pydicom.Dataset
    sop_instance_uid: str
    frame: int
    attributes: FrameAttributes
    rows: int
    columns: int


@dataclass(frozen=True)
class _Geometry:
    order: list[_Slice]  # along the normal
    affine: np.ndarray  # RAS
    spacing: tuple[float, float, float]  # column, row, slice (mm)
    slice_spacing_from: str


def series_to_nifti(datasets: Sequence[pydicom.Dataset]) -> NiftiResult:
    """The series as a volume, or ``Unconvertible`` saying why it cannot be one."""
    geometry = _geometry(_slices(datasets))
    volume = _voxels(geometry.order)
    shape = _shape(geometry)
    sidecar = {
        **_grid(datasets, geometry),
        "datatype": str(volume.dtype),
        "rescale": "modality LUT applied to the stored voxels (scl_slope 1, scl_inter 0)",
        "converter": {
            "name": "lakehouse.datasets.nifti",
            "version": lakehouse.__version__,
            "libraries": {"nibabel": nibabel.__version__, "numpy": np.__version__, "pydicom": pydicom.__version__},
        },
    }
    return NiftiResult(image=_nii_gz(volume, shape, geometry), sidecar=sidecar, shape=shape)


def series_grid(datasets: Sequence[pydicom.Dataset]) -> dict[str, Any]:
    """The grid ``series_to_nifti`` would put the series on (slices k -> SOP UID and frame,
    affine, spacing, shape), from the headers alone: no voxel is decoded. Same refusals."""
    return _grid(datasets, _geometry(_slices(datasets)))


def _shape(geometry: _Geometry) -> tuple[int, int, int]:
    first = geometry.order[0]
    return (first.columns, first.rows, len(geometry.order))


def _grid(datasets: Sequence[pydicom.Dataset], geometry: _Geometry) -> dict[str, Any]:
    return {
        "SeriesInstanceUID": str(datasets[0].get("SeriesInstanceUID") or ""),
        "slices": [
            {"index": k, "SOPInstanceUID": s.sop_instance_uid, "frame": s.frame} for k, s in enumerate(geometry.order)
        ],
        "affine": [[float(v) for v in row] for row in geometry.affine],
        "spacing": list(geometry.spacing),
        "shape": list(_shape(geometry)),
        "slice_spacing_from": geometry.slice_spacing_from,
    }


def _slices(datasets: Sequence[pydicom.Dataset]) -> list[_Slice]:
    if not datasets:
        raise Unconvertible("not_an_image", "the series has no objects")
    without = sum(not has_pixels(ds) for ds in datasets)
    if without:
        raise Unconvertible("not_an_image", f"{without} of {len(datasets)} objects carry no pixel data")
    if any(is_color(ds) for ds in datasets):
        raise Unconvertible("not_grayscale", "colour images do not make a volume")
    if any(not ds.get("Rows") or not ds.get("Columns") for ds in datasets):
        raise Unconvertible("undecodable_pixels", "an object does not state its rows and columns")
    return [
        _Slice(ds, str(ds.get("SOPInstanceUID") or ""), f, FrameAttributes.of(ds, f), int(ds.Rows), int(ds.Columns))
        for ds in datasets
        for f in range(frame_count(ds))
    ]


def _geometry(slices: list[_Slice]) -> _Geometry:
    first = slices[0].attributes
    if any(s.attributes.position is None or s.attributes.orientation is None or s.attributes.pixel_spacing is None
           for s in slices):
        raise Unconvertible("missing_geometry", "a slice lacks position, orientation or pixel spacing")
    if len({(s.rows, s.columns) for s in slices}) > 1:
        raise Unconvertible("mixed_shape", "slices differ in rows or columns")
    orientation = np.array(first.orientation)
    if any(np.abs(np.array(s.attributes.orientation) - orientation).max() > ORIENTATION_TOLERANCE for s in slices):
        raise Unconvertible("mixed_orientation", "slices differ in orientation")
    pixel_spacing = np.array(first.pixel_spacing)
    if (pixel_spacing <= 0).any() or any(
        (np.abs(np.array(s.attributes.pixel_spacing) - pixel_spacing) > PIXEL_SPACING_TOLERANCE * pixel_spacing).any()
        for s in slices
    ):
        raise Unconvertible("mixed_pixel_spacing", "slices differ in pixel spacing (or it is not positive)")
    row_dir, col_dir = orientation[:3], orientation[3:]
    if (abs(np.linalg.norm(row_dir) - 1) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(col_dir) - 1)
            > ORIENTATION_TOLERANCE or abs(row_dir @ col_dir) > ORIENTATION_TOLERANCE):
        raise Unconvertible("missing_geometry", "the orientation is not two orthogonal unit vectors")
    normal = np.cross(row_dir, col_dir)
    positions = np.array([s.attributes.position for s in slices])
    along = positions @ normal
    order = sorted(range(len(slices)), key=lambda i: (along[i], slices[i].sop_instance_uid, slices[i].frame))
    positions, along = positions[order], along[order]
    slice_spacing, source = _slice_spacing(slices[order[0]].dataset, positions, along, normal)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * pixel_spacing[1]  # i runs along a row: columns apart
    lps[:3, 1] = col_dir * pixel_spacing[0]  # j runs down a column: rows apart
    lps[:3, 2] = normal * slice_spacing
    lps[:3, 3] = positions[0]
    spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), float(slice_spacing))
    return _Geometry([slices[i] for i in order], LPS_TO_RAS @ lps, spacing, source)


def _slice_spacing(ds: pydicom.Dataset, positions: np.ndarray, along: np.ndarray, normal: np.ndarray) -> tuple[float, str]:
    """The mean gap along the normal, after the checks that make one spacing true for all slices."""
    if len(along) == 1:  # one slice: no positions to measure; its declared spacing or 1 mm
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = ds.get(keyword)
            if value is not None and float(value) > 0:
                return float(value), keyword
        return 1.0, "default"
    gaps = np.diff(along)
    if (gaps < DUPLICATE_TOLERANCE_MM).any():
        count = int((gaps < DUPLICATE_TOLERANCE_MM).sum())
        raise Unconvertible("duplicate_position", f"{count} slices repeat a position (time points or echoes?)")
    mean = float((along[-1] - along[0]) / (len(along) - 1))
    if np.abs(gaps - mean).max() > SPACING_TOLERANCE * mean:
        raise Unconvertible(
            "non_uniform_spacing",
            f"slice gaps range from {gaps.min():.3f} to {gaps.max():.3f} mm (tolerance {SPACING_TOLERANCE:.0%})",
        )
    depth = along - along[0]
    drift = np.linalg.norm((positions - positions[0]) - np.outer(depth, normal), axis=1)
    if (drift > np.maximum(TILT_FLOOR_MM, TILT_TOLERANCE * depth)).any():
        degrees = math.degrees(math.atan(float(drift[-1] / depth[-1])))
        raise Unconvertible("gantry_tilt", f"slices are sheared in-plane by {degrees:.2f} degrees (gantry tilt)")
    return mean, "positions"


def _voxels(order: list[_Slice]) -> np.ndarray:
    """``(slices, rows, columns)`` modality values, C order: NIfTI's (i, j, k) voxel order on disk."""
    volume: np.ndarray = np.empty((len(order), order[0].rows, order[0].columns), dtype="<i2")
    for k, item in enumerate(order):
        stored = decode_frame(item.dataset, item.frame)
        if stored.shape != volume.shape[1:]:
            raise Unconvertible("mixed_shape", "decoded pixel data does not match rows and columns")
        slope, intercept = item.attributes.slope, item.attributes.intercept
        table = "ModalityLUTSequence" in item.dataset
        if volume.dtype.kind == "i" and not table and _fits_int16(stored, slope, intercept):
            # integer arithmetic in int32, cast into the slice in place: no temporary volume
            if slope == 1:
                np.add(stored, int(intercept), out=volume[k], dtype=np.int32, casting="unsafe")
            else:
                np.copyto(volume[k], stored.astype(np.int32) * int(slope) + int(intercept), casting="unsafe")
            continue
        if volume.dtype.kind == "i":  # the first slice int16 cannot hold exactly: float32 from here on
            volume = volume.astype("<f4")
        volume[k] = modality_values(item.dataset, stored, slope, intercept) if table else (
            stored.astype(np.float64) * slope + intercept)
    return volume


def _fits_int16(stored: np.ndarray, slope: float, intercept: float) -> bool:
    if not (slope.is_integer() and intercept.is_integer()) or stored.size == 0:
        return False
    ends = (float(stored.min()) * slope + intercept, float(stored.max()) * slope + intercept)
    return -32768 <= min(ends) and max(ends) <= 32767


def _nii_gz(volume: np.ndarray, shape: tuple[int, int, int], geometry: _Geometry) -> bytes:
    header = nibabel.Nifti1Header()
    header.set_data_dtype(volume.dtype)
    header.set_data_shape(shape)
    header.set_zooms(geometry.spacing)
    header.set_xyzt_units("mm")
    header.set_sform(geometry.affine, code="scanner")
    header.set_qform(geometry.affine, code="scanner")
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as stream:
        header.write_to(stream)
        stream.write(np.ascontiguousarray(volume).data.cast("B"))
    return buffer.getvalue()


def label_map_nifti(volume: np.ndarray, sidecar: dict[str, Any]) -> bytes:
    """A label map on the series' NIfTI grid (same affine), uint16, deterministic gzip."""
    affine = np.asarray(sidecar["affine"])
    image = nibabel.Nifti1Image(volume.astype(np.uint16), affine)
    image.header.set_xyzt_units("mm")
    image.set_sform(affine, code="scanner")
    image.set_qform(affine, code="scanner")
    return gzip.compress(image.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)
