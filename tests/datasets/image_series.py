"""Synthetic DICOM image series with known geometry and voxel values, round-tripped through
Part 10 bytes so the renderers see what ``pydicom.dcmread`` gives the dataset build.

Stored value of voxel (column i, row j, slice k) is ``stored_value(i, j, k)``, so a test can
check any voxel of a rendered volume against its source slice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def oblique(degrees: float) -> tuple[float, ...]:
    """Axial rotated about the patient's left-right axis by ``degrees`` (a double-oblique-free tilt)."""
    a = np.radians(degrees)
    return (1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(np.sin(a)))


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    return np.cross(np.array(orientation[:3]), np.array(orientation[3:]))


def stored_value(i: np.ndarray | int, j: np.ndarray | int, k: int) -> np.ndarray | int:
    return (np.asarray(i) * 3 + np.asarray(j) * 5 + k * 11) % 3000


def stored_slice(rows: int, columns: int, k: int) -> np.ndarray:
    j, i = np.mgrid[0:rows, 0:columns]
    return np.asarray(stored_value(i, j, k), dtype=np.uint16)


def uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def part10(ds: Dataset, sop_class: str) -> Dataset:
    """``ds`` written as a Part 10 file and read back in full."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _image(pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 12) -> Dataset:
    ds = Dataset()
    ds.set_pixel_data(pixels, photometric, bits_stored)
    return ds


def image_slice(
    series: str,
    k: int,
    *,
    position: Sequence[float] | None,
    orientation: Sequence[float] | None = AXIAL,
    pixel_spacing: Sequence[float] | None = (0.5, 0.75),
    rows: int = 6,
    columns: int = 5,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    pixels: np.ndarray | None = None,
) -> Dataset:
    """Slice ``k`` of ``series`` (a classic CT or MR object) at ``position``."""
    ds = _image(stored_slice(rows, columns, k) if pixels is None else pixels)
    ds.SOPInstanceUID = uid(series, k)
    ds.SeriesInstanceUID = series
    ds.StudyInstanceUID = uid(series, "study")
    ds.Modality = modality
    ds.InstanceNumber = k + 1
    if position is not None:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    if orientation is not None:
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    ds.SliceThickness = "9"  # deliberately not the spacing: the converter must not use it
    if modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:g}", f"{intercept:g}", "HU"
    return part10(ds, CT_IMAGE if modality == "CT" else MR_IMAGE)


def stack(
    count: int,
    *,
    orientation: Sequence[float] = AXIAL,
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    gap: float = 2.5,
    gaps: Sequence[float] | None = None,
    shear: Sequence[float] = (0.0, 0.0, 0.0),
    series: str | None = None,
    **slice_options: object,
) -> list[Dataset]:
    """``count`` slices along the orientation's normal, ``gap`` mm apart (or the given ``gaps``);
    ``shear`` adds an in-plane offset per slice (gantry tilt)."""
    series = series or uid("series", count, orientation, gap, gaps, shear)
    normal = normal_of(orientation)
    offsets = np.concatenate([[0.0], np.cumsum(gaps if gaps is not None else [gap] * (count - 1))])
    return [
        image_slice(
            series, k, position=np.array(origin) + offsets[k] * normal + k * np.array(shear),
            orientation=orientation, **slice_options,  # type: ignore[arg-type]
        )
        for k in range(count)
    ]


def enhanced_ct(
    frames: int,
    *,
    orientation: Sequence[float] = AXIAL,
    origin: Sequence[float] = (5.0, -7.0, -40.0),
    gap: float = 1.25,
    rows: int = 4,
    columns: int = 3,
    reverse: bool = False,
    per_frame_rescale: bool = False,
) -> Dataset:
    """One Enhanced CT object: frame f at ``origin + f*gap*normal`` (or the reverse frame order),
    orientation and pixel measures shared, positions and (optionally) rescale per frame."""
    normal = normal_of(orientation)
    order = list(range(frames))[::-1] if reverse else list(range(frames))
    pixels = np.stack([stored_slice(rows, columns, k) for k in order])
    ds = _image(pixels)
    ds.NumberOfFrames = frames
    series = uid("enhanced", frames, orientation, reverse)
    ds.SOPInstanceUID = uid(series, "object")
    ds.SeriesInstanceUID = series
    ds.StudyInstanceUID = uid(series, "study")
    ds.Modality = "CT"
    shared = Dataset()
    shared.PlaneOrientationSequence = DicomSequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    shared.PixelMeasuresSequence = DicomSequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = ["0.8", "0.6"]
    shared.PixelMeasuresSequence[0].SliceThickness = "5"
    if not per_frame_rescale:
        shared.PixelValueTransformationSequence = DicomSequence([_rescale(1, -1024)])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k in order:
        item = Dataset()
        item.PlanePositionSequence = DicomSequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [
            f"{v:.6f}" for v in np.array(origin) + k * gap * normal
        ]
        if per_frame_rescale:
            item.PixelValueTransformationSequence = DicomSequence([_rescale(2, -1000 - k)])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return part10(ds, ENHANCED_CT_IMAGE)


def _rescale(slope: float, intercept: float) -> Dataset:
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = f"{slope:g}", f"{intercept:g}", "HU"
    return item


def text_report(series: str) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = uid(series, "sr")
    ds.SeriesInstanceUID = series
    ds.Modality = "SR"
    return part10(ds, BASIC_TEXT_SR)


def secondary_capture(pixels: np.ndarray, photometric: str, *, bits_stored: int = 8, **elements: object) -> Dataset:
    """A secondary-capture object carrying ``pixels`` as given (grey, RGB or multi-frame)."""
    ds = _image(pixels, photometric, bits_stored)
    ds.SOPInstanceUID = uid("sc", photometric, pixels.shape, sorted(elements))
    ds.SeriesInstanceUID = uid("sc-series")
    ds.Modality = "OT"
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return part10(ds, SECONDARY_CAPTURE)
