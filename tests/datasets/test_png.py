"""PNG rendering on pydicom's bundled CT and MR objects and on synthetic ones, each decoded back
with Pillow and compared with the DICOM grayscale pipeline computed independently here."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from image_series import enhanced_ct, secondary_capture, text_report, uid
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing

from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.png import RenderedPng, object_to_pngs
from lakehouse.datasets.windows import Window, parse_window


def bundled(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path, f"pydicom test file {name} missing"
    return pydicom.dcmread(path)


def decoded(png: RenderedPng) -> np.ndarray:
    image = Image.open(io.BytesIO(png.data))
    assert image.size == (png.columns, png.rows)
    return np.asarray(image)


def linear_window(values: np.ndarray, center: float, width: float, bits: int) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out as the standard states it."""
    top = (1 << bits) - 1
    values = values.astype(np.float64)
    out = ((values - (center - 0.5)) / (width - 1) + 0.5) * top
    out = np.where(values <= center - 0.5 - (width - 1) / 2, 0, out)
    out = np.where(values > center - 0.5 + (width - 1) / 2, top, out)
    return np.rint(out)


def test_ct_lung_preset_applies_rescale_then_window() -> None:
    ds = bundled("CT_small.dcm")
    [png] = object_to_pngs(ds, parse_window("lung"))
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert (png.bits, png.window_center, png.window_width, png.frame) == (8, -600.0, 1500.0, 0)
    assert (png.rows, png.columns) == (128, 128)
    grey = decoded(png)
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, linear_window(hu, -600, 1500, 8))
    assert 0 < grey.mean() < 255  # the window shows the image, not a blank


def test_ct_explicit_window_16_bit() -> None:
    ds = bundled("CT_small.dcm")
    [png] = object_to_pngs(ds, parse_window("400/40"), bits=16)
    hu = ds.pixel_array.astype(np.float64) - 1024
    assert (png.bits, png.window_center, png.window_width) == (16, 40.0, 400.0)
    grey = decoded(png)
    assert grey.dtype == np.uint16
    np.testing.assert_array_equal(grey, linear_window(hu, 40, 400, 16))


def test_mr_dicom_window_matches_pydicoms_windowing() -> None:
    ds = bundled("MR_small.dcm")
    [png] = object_to_pngs(ds, parse_window("dicom"))
    assert (png.window_center, png.window_width) == (600.0, 1600.0)
    # pydicom maps the same window onto the stored range (signed 16 bit); rescale that to 0..255
    reference = (apply_windowing(ds.pixel_array.astype(np.float64), ds) + 32768) / 65535 * 255
    assert np.abs(decoded(png).astype(np.float64) - reference).max() <= 1.0


def test_mr_preset_window_is_recorded() -> None:
    [png] = object_to_pngs(bundled("MR_small.dcm"), parse_window("brain"), bits=16)
    assert (png.window_center, png.window_width, png.bits) == (40.0, 80.0, 16)


def test_first_of_several_dicom_windows_is_used() -> None:
    ds = bundled("MR-SIEMENS-DICOM-WithOverlays.dcm")  # Window Center 450\\200, Width 790\\700
    [png] = object_to_pngs(ds, parse_window("dicom"))
    assert (png.window_center, png.window_width) == (float(ds.WindowCenter[0]), float(ds.WindowWidth[0])) == (450, 790)


def test_modality_lut_table_is_applied_before_the_window() -> None:
    ds = bundled("mlut_18.dcm")  # a Modality LUT Sequence instead of rescale
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    center, width = float(modality.mean()), float(np.ptp(modality)) / 2
    [png] = object_to_pngs(ds, Window("test", center, width))
    assert np.abs(decoded(png).astype(np.int16) - linear_window(modality, center, width, 8)).max() <= 1


def test_voi_lut_table_when_the_object_has_no_window_values() -> None:
    ds = bundled("vlut_04.dcm")  # a VOI LUT Sequence (16-bit output) and no Window Center/Width
    [png] = object_to_pngs(ds, parse_window("dicom"))
    assert (png.window_center, png.window_width) == (None, None)
    expected = np.rint(apply_voi(ds.pixel_array, ds).astype(np.float64) * 255 / 65535)
    np.testing.assert_array_equal(decoded(png), expected)


def test_monochrome1_is_inverted() -> None:
    pixels = np.arange(0, 4000, 125, dtype=np.uint16).reshape(4, 8)
    mono1 = secondary_capture(pixels, "MONOCHROME1", bits_stored=12)
    mono2 = secondary_capture(pixels, "MONOCHROME2", bits_stored=12)
    window = parse_window("2000/1000")
    [inverted], [plain] = object_to_pngs(mono1, window), object_to_pngs(mono2, window)
    np.testing.assert_array_equal(decoded(inverted), 255 - decoded(plain))
    assert decoded(inverted)[0, 0] == 255  # lowest value is white in MONOCHROME1


def test_rgb_is_written_as_rgb_without_window() -> None:
    ds = bundled("SC_rgb.dcm")
    [png] = object_to_pngs(ds, parse_window("lung"), bits=16)
    assert (png.bits, png.window_center, png.window_width) == (8, None, None)
    assert Image.open(io.BytesIO(png.data)).mode == "RGB"
    np.testing.assert_array_equal(decoded(png), ds.pixel_array)


def test_ybr_is_converted_to_rgb() -> None:
    ds = bundled("SC_ybr_full_422_uncompressed.dcm")
    [png] = object_to_pngs(ds, parse_window("dicom"))
    np.testing.assert_array_equal(decoded(png), ds.pixel_array)  # pydicom's YBR -> RGB conversion


def test_palette_colour_goes_through_its_lut() -> None:
    ds = bundled("OBXXXX1A.dcm")
    [png] = object_to_pngs(ds, parse_window("dicom"))
    rgb = apply_color_lut(ds.pixel_array, ds)
    expected = rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    np.testing.assert_array_equal(decoded(png), expected)


def test_multiframe_object_gives_one_png_per_frame() -> None:
    ds = bundled("emri_small.dcm")  # 10 frames, no window, no rescale
    pngs = object_to_pngs(ds, parse_window("dicom"))
    assert [p.frame for p in pngs] == list(range(10))
    for png, frame in zip(pngs, ds.pixel_array, strict=True):
        low, high = float(frame.min()), float(frame.max())
        assert (png.window_center, png.window_width) == ((low + high) / 2, high - low)  # full range, recorded
        grey = decoded(png)
        assert grey[frame == frame.min()].max() == 0 and grey[frame == frame.max()].min() == 255


def test_enhanced_object_uses_each_frames_rescale() -> None:
    ds = enhanced_ct(3, per_frame_rescale=True)  # frame k: 2 * stored - 1000 - k
    pngs = object_to_pngs(ds, Window("wide", center=2000.0, width=8001.0))
    for k, png in enumerate(pngs):
        values = ds.pixel_array[k].astype(np.float64) * 2 - 1000 - k
        np.testing.assert_array_equal(decoded(png), linear_window(values, 2000, 8001, 8))


def test_dicom_voi_lut_functions() -> None:
    pixels = np.array([[0, 50, 100, 150, 200]], dtype=np.uint16)
    exact = secondary_capture(pixels, "MONOCHROME2", bits_stored=12, WindowCenter="100", WindowWidth="200",
                              VOILUTFunction="LINEAR_EXACT")
    [png] = object_to_pngs(exact, parse_window("dicom"))
    np.testing.assert_array_equal(decoded(png)[0], [0, 64, 128, 191, 255])  # (x - 0) / 200 * 255, exact ends
    sigmoid = secondary_capture(pixels, "MONOCHROME2", bits_stored=12, WindowCenter="100", WindowWidth="200",
                                VOILUTFunction="SIGMOID")
    [png] = object_to_pngs(sigmoid, parse_window("dicom"))
    np.testing.assert_array_equal(decoded(png)[0], np.rint(255 / (1 + np.exp(-4 * (pixels[0].astype(float) - 100) / 200))))


def test_same_object_same_bytes_and_no_time_chunk() -> None:
    ds = bundled("CT_small.dcm")
    first, second = object_to_pngs(ds, parse_window("bone")), object_to_pngs(bundled("CT_small.dcm"), parse_window("bone"))
    assert first[0].data == second[0].data
    assert b"tIME" not in first[0].data


def test_refuses_an_object_without_pixels() -> None:
    with pytest.raises(Unconvertible) as caught:
        object_to_pngs(text_report(uid("report")), parse_window("lung"))
    assert caught.value.code == "not_an_image"


def test_refuses_other_bit_depths() -> None:
    with pytest.raises(ValueError):
        object_to_pngs(bundled("CT_small.dcm"), parse_window("lung"), bits=12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lung", Window("lung", -600.0, 1500.0)),
        (" Mediastinum ", Window("mediastinum", 50.0, 350.0)),
        ("bone", Window("bone", 400.0, 1800.0)),
        ("brain", Window("brain", 40.0, 80.0)),
        ("dicom", Window("dicom", None, None)),
        ("1500/-600", Window("1500/-600", -600.0, 1500.0)),
        ("80.5/40", Window("80.5/40", 40.0, 80.5)),
    ],
)
def test_parse_window(text: str, expected: Window) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "abdomen", "1500", "0/40", "-5/40", "nan/1", "1500/-600/2", "w/l"])
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="W/L"):
        parse_window(text)


def test_refuses_undecodable_pixel_data() -> None:
    ds = bundled("CT_small.dcm")
    ds.PixelData = ds.PixelData[:100]  # truncated
    with pytest.raises(Unconvertible) as caught:
        object_to_pngs(ds, parse_window("lung"))
    assert caught.value.code == "undecodable_pixels"
