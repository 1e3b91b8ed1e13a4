"""NIfTI conversion against synthetic series whose geometry and voxel values are known."""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from image_series import (
    AXIAL,
    SAGITTAL,
    enhanced_ct,
    image_slice,
    oblique,
    secondary_capture,
    stack,
    stored_slice,
    text_report,
    uid,
)
from nibabel.orientations import aff2axcodes
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from lakehouse.datasets.frames import FrameAttributes
from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.nifti import NiftiResult, series_to_nifti

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
DCM2NIIX = Path(sys.executable).parent / "dcm2niix"


def volume(result: NiftiResult) -> nibabel.Nifti1Image:
    return nibabel.Nifti1Image.from_bytes(gzip.decompress(result.image))


def source_of(datasets: list[pydicom.Dataset], entry: dict) -> tuple[pydicom.Dataset, FrameAttributes]:
    ds = next(d for d in datasets if d.SOPInstanceUID == entry["SOPInstanceUID"])
    return ds, FrameAttributes.of(ds, entry["frame"])


def assert_affine_maps_voxels_to_positions(result: NiftiResult, datasets: list[pydicom.Dataset]) -> None:
    """Voxel (i, j, k) lands on slice k's ImagePositionPatient moved i columns along the row
    direction and j rows down the column direction (PS3.3 C.7.6.2.1.1), in RAS."""
    image = volume(result)
    columns, rows, _ = image.shape
    for k, entry in enumerate(result.sidecar["slices"]):
        _, frame = source_of(datasets, entry)
        row_dir, col_dir = np.array(frame.orientation[:3]), np.array(frame.orientation[3:])
        for i, j in [(0, 0), (columns - 1, 0), (0, rows - 1), (columns - 1, rows - 1)]:
            lps = np.array(frame.position) + i * frame.pixel_spacing[1] * row_dir + j * frame.pixel_spacing[0] * col_dir
            for affine in (image.affine, image.header.get_sform(), image.header.get_qform()):
                mapped = affine @ np.array([i, j, k, 1.0])
                np.testing.assert_allclose(mapped[:3], lps * LPS_TO_RAS, atol=1e-4)
    np.testing.assert_allclose(result.sidecar["affine"], image.affine, atol=1e-6)


def assert_values(result: NiftiResult, expected_source_slices: list[int], slope: float = 1, intercept: float = -1024):
    data = np.asanyarray(volume(result).dataobj)
    for k, source in enumerate(expected_source_slices):
        expected = stored_slice(data.shape[1], data.shape[0], source).T.astype(np.float64) * slope + intercept
        np.testing.assert_array_equal(data[:, :, k], expected)


def test_axial_volume_geometry_values_and_sidecar() -> None:
    datasets = stack(4, gap=2.5)
    result = series_to_nifti(datasets)
    image = volume(result)
    assert result.shape == image.shape == (5, 6, 4)
    assert image.get_data_dtype() == np.int16
    assert aff2axcodes(image.affine) == ("L", "P", "S")
    # spacing from positions (2.5), not from SliceThickness (9); Pixel Spacing is (rows, columns) apart
    np.testing.assert_allclose(image.header.get_zooms(), (0.75, 0.5, 2.5))
    assert result.sidecar["spacing"] == pytest.approx([0.75, 0.5, 2.5])
    assert result.sidecar["slice_spacing_from"] == "positions"
    assert_affine_maps_voxels_to_positions(result, datasets)
    assert_values(result, [0, 1, 2, 3])
    assert [s["SOPInstanceUID"] for s in result.sidecar["slices"]] == [d.SOPInstanceUID for d in datasets]
    assert [s["index"] for s in result.sidecar["slices"]] == [0, 1, 2, 3]
    assert result.sidecar["SeriesInstanceUID"] == datasets[0].SeriesInstanceUID
    assert result.sidecar["converter"]["libraries"]["nibabel"] == nibabel.__version__
    assert json.loads(json.dumps(result.sidecar)) == result.sidecar
    # raw and scaled reads agree: the rescale is in the voxels, not in scl_slope/scl_inter
    raw_header = nibabel.Nifti1Header.from_fileobj(gzip.GzipFile(fileobj=io.BytesIO(result.image)))
    assert (float(raw_header["scl_slope"]), float(raw_header["scl_inter"])) == (1.0, 0.0)
    np.testing.assert_array_equal(image.get_fdata(), np.asanyarray(image.dataobj))


def test_sagittal_volume() -> None:
    datasets = stack(3, orientation=SAGITTAL, gap=1.5)
    result = series_to_nifti(datasets)
    assert aff2axcodes(volume(result).affine) == ("P", "I", "R")
    assert_affine_maps_voxels_to_positions(result, datasets)
    assert_values(result, [0, 1, 2])


def test_oblique_volume() -> None:
    datasets = stack(5, orientation=oblique(27.5), gap=3.0, origin=(12.5, 40.25, -88.0))
    result = series_to_nifti(datasets)
    assert_affine_maps_voxels_to_positions(result, datasets)
    np.testing.assert_allclose(volume(result).header.get_zooms(), (0.75, 0.5, 3.0), atol=1e-5)
    assert_values(result, [0, 1, 2, 3, 4])


def test_reversed_slice_order_and_shuffled_files_sort_by_position_along_the_normal() -> None:
    datasets = stack(6, gap=-2.0)  # instance numbers run against the normal
    shuffled = datasets[:]
    random.Random(7).shuffle(shuffled)
    result = series_to_nifti(shuffled)
    assert [s["SOPInstanceUID"] for s in result.sidecar["slices"]] == [d.SOPInstanceUID for d in reversed(datasets)]
    assert_affine_maps_voxels_to_positions(result, datasets)
    assert_values(result, [5, 4, 3, 2, 1, 0])
    assert result.image == series_to_nifti(datasets).image  # file order never changes the bytes


@pytest.mark.parametrize("reverse", [False, True])
def test_enhanced_multiframe_object(reverse: bool) -> None:
    ds = enhanced_ct(5, orientation=oblique(-15.0), reverse=reverse)
    result = series_to_nifti([ds])
    assert result.shape == (3, 4, 5)
    frames = [s["frame"] for s in result.sidecar["slices"]]
    assert frames == ([4, 3, 2, 1, 0] if reverse else [0, 1, 2, 3, 4])
    assert {s["SOPInstanceUID"] for s in result.sidecar["slices"]} == {ds.SOPInstanceUID}
    assert_affine_maps_voxels_to_positions(result, [ds])
    np.testing.assert_allclose(volume(result).header.get_zooms(), (0.6, 0.8, 1.25), atol=1e-5)
    assert_values(result, [0, 1, 2, 3, 4])


def test_enhanced_per_frame_rescale() -> None:
    result = series_to_nifti([enhanced_ct(3, per_frame_rescale=True)])
    data = np.asanyarray(volume(result).dataobj)
    assert data.dtype == np.int16
    for k in range(3):
        np.testing.assert_array_equal(data[:, :, k], stored_slice(4, 3, k).T.astype(np.int32) * 2 - 1000 - k)


def test_fractional_rescale_is_float32() -> None:
    result = series_to_nifti(stack(3, slope=0.5, intercept=-10.25))
    assert volume(result).get_data_dtype() == np.float32
    assert result.sidecar["datatype"] == "float32"
    assert_values(result, [0, 1, 2], slope=0.5, intercept=-10.25)


def test_values_beyond_int16_switch_the_volume_to_float32_without_losing_earlier_slices() -> None:
    result = series_to_nifti(stack(3, slope=800, intercept=-1024))  # slice 0 fits int16, slice 1 does not
    assert volume(result).get_data_dtype() == np.float32
    assert_values(result, [0, 1, 2], slope=800)


def test_modality_lut_table_is_applied() -> None:
    ds = pydicom.dcmread(get_testdata_file("mlut_18.dcm"))  # a Modality LUT Sequence, no rescale
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], list(AXIAL), [1, 1]
    result = series_to_nifti([ds])
    assert result.sidecar["datatype"] == "float32"
    expected = apply_modality_lut(ds.pixel_array, ds).T
    np.testing.assert_array_equal(np.asanyarray(volume(result).dataobj)[:, :, 0], expected)


def test_single_slice_takes_its_declared_thickness() -> None:
    result = series_to_nifti(stack(1))
    assert result.shape == (5, 6, 1)
    assert result.sidecar["slice_spacing_from"] == "SliceThickness"
    assert result.sidecar["spacing"][2] == 9.0


def test_same_input_same_bytes_and_no_timestamp() -> None:
    first, second = series_to_nifti(stack(4)), series_to_nifti(stack(4))
    assert first.image == second.image
    assert first.image[:2] == b"\x1f\x8b" and first.image[4:8] == b"\x00\x00\x00\x00"  # gzip MTIME 0
    assert first.image[3] & 0x08 == 0  # no file name in the gzip header


def test_spacing_within_tolerance_is_accepted() -> None:
    result = series_to_nifti(stack(4, gaps=[2.5, 2.51, 2.49]))
    assert result.sidecar["spacing"][2] == pytest.approx(2.5, abs=1e-6)


def _refusal(datasets: list[pydicom.Dataset]) -> Unconvertible:
    with pytest.raises(Unconvertible) as caught:
        series_to_nifti(datasets)
    reason = caught.value.reason
    for ds in datasets:  # no UID (or any other header value) in the reason
        assert str(ds.get("SOPInstanceUID")) not in reason and str(ds.get("SeriesInstanceUID")) not in reason
    return caught.value


def test_refuses_gantry_tilt() -> None:
    tilted = stack(5, gap=2.5, shear=(0.0, 0.5, 0.0))  # 0.5 mm in-plane per 2.5 mm: ~11 degrees
    assert _refusal(tilted).code == "gantry_tilt"


def test_refuses_non_uniform_spacing() -> None:
    assert _refusal(stack(4, gaps=[2.5, 2.5, 5.0])).code == "non_uniform_spacing"  # a missing slice


def test_refuses_mixed_orientation() -> None:
    series = uid("mixed-orientation")
    datasets = stack(3, series=series)
    datasets.append(image_slice(series, 3, position=(0, 0, 100), orientation=oblique(10)))
    assert _refusal(datasets).code == "mixed_orientation"


@pytest.mark.parametrize("missing", ["position", "orientation", "pixel_spacing"])
def test_refuses_missing_geometry(missing: str) -> None:
    series = uid("missing", missing)
    datasets = stack(3, series=series)
    datasets.append(image_slice(series, 3, **{"position": (0.0, 0.0, 50.0), missing: None}))
    assert _refusal(datasets).code == "missing_geometry"


def test_refuses_a_non_image_object() -> None:
    assert _refusal([text_report(uid("sr-only"))]).code == "not_an_image"
    series = uid("with-sr")
    assert _refusal([*stack(3, series=series), text_report(series)]).code == "not_an_image"


def test_refuses_mixed_shapes() -> None:
    series = uid("mixed-shape")
    datasets = [*stack(2, series=series, gap=1.0), image_slice(series, 2, position=(-10, -20, 32), rows=7)]
    assert _refusal(datasets).code == "mixed_shape"


def test_refuses_mixed_pixel_spacing() -> None:
    series = uid("mixed-spacing")
    datasets = [*stack(2, series=series, gap=1.0), image_slice(series, 2, position=(-10, -20, 32), pixel_spacing=(1, 1))]
    assert _refusal(datasets).code == "mixed_pixel_spacing"


def test_refuses_repeated_positions() -> None:
    series = uid("echoes")
    datasets = [image_slice(series, k, position=(0.0, 0.0, 10.0 * (k // 2))) for k in range(4)]
    assert _refusal(datasets).code == "duplicate_position"


def test_refuses_undecodable_pixel_data() -> None:
    datasets = stack(3)
    datasets[1].PixelData = datasets[1].PixelData[:10]  # truncated
    assert _refusal(datasets).code == "undecodable_pixels"


def test_refuses_colour_images() -> None:
    rgb = secondary_capture(np.zeros((4, 4, 3), dtype=np.uint8), "RGB")
    assert _refusal([rgb]).code == "not_grayscale"



needs_dcm2niix = pytest.mark.skipif(
    shutil.which("dcm2niix") is None and not DCM2NIIX.exists(), reason="dcm2niix (bench extra) absent"
)


def assert_agrees_with_dcm2niix(datasets: list[pydicom.Dataset], folder: Path) -> None:
    """The same series through dcm2niix: same voxels at the same world positions (both brought to
    the closest canonical RAS orientation, since dcm2niix may flip axes)."""
    (folder / "in").mkdir()
    for k, ds in enumerate(datasets):
        ds.save_as(folder / "in" / f"{k}.dcm", enforce_file_format=True)
    binary = shutil.which("dcm2niix") or str(DCM2NIIX)
    subprocess.run([binary, "-z", "n", "-b", "n", "-f", "ref", "-o", str(folder), str(folder / "in")],
                   check=True, capture_output=True)
    reference = nibabel.as_closest_canonical(nibabel.load(folder / "ref.nii"))
    ours = nibabel.as_closest_canonical(volume(series_to_nifti(datasets)))
    np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-3)
    np.testing.assert_array_equal(ours.get_fdata(), reference.get_fdata())


@needs_dcm2niix
@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL, oblique(27.5)], ids=["axial", "sagittal", "oblique"])
def test_agrees_with_dcm2niix(orientation: tuple[float, ...], tmp_path: Path) -> None:
    assert_agrees_with_dcm2niix(stack(5, orientation=orientation, gap=-3.0, rows=8, columns=7), tmp_path)


@needs_dcm2niix
def test_enhanced_agrees_with_dcm2niix(tmp_path: Path) -> None:
    assert_agrees_with_dcm2niix([enhanced_ct(4, orientation=oblique(20.0), reverse=True, rows=8, columns=7)], tmp_path)
