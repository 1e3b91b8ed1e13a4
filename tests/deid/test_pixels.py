"""Burned-in text: risk triage and pixel cleaning on real files (deid-data ultrasounds with burned-in
names, pydicom's compressed, palette and secondary-capture test files) and on synthetic objects
with rendered text. Cleaning is proved by OCR reading nothing afterwards."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from corpora import DEID_DATA, sample_file
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import MPEG4HP41, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from lakehouse.deid import ocr, pixels
from lakehouse.deid.masks import load_mask_rules, mask_rectangles
from lakehouse.deid.pixels import burned_in_risk, clean_pixel_data
from lakehouse.dicom.part10 import write_part10
from lakehouse.errors import ConfigError, PixelCleaningError

ULTRASOUNDS = DEID_DATA / "ultrasounds"

#: Where the identifying text sits in each deid-data ultrasound, measured on the rendered frames
#: (rows as [top, bottom), full width): patient name/ID/birth date/institution/date lines, and
#: free-text annotation lines. Independent of schemas/deid/masks.json on purpose.
KNOWN_TEXT = {
    "GREYSCALE_IMAGE.dcm": [(6, 19)],
    "RGB_IMAGE.dcm": [(8, 23), (36, 51), (743, 763)],
    "GREYSCALE_CINE.dcm": [(6, 16)],
    "RGB_CINE.dcm": [(4, 44), (623, 643)],
}


def _ultrasound(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (ULTRASOUNDS / name).exists():
        return ULTRASOUNDS / name
    folder = tmp_path_factory.mktemp("us")
    with zipfile.ZipFile(ULTRASOUNDS / name.replace(".dcm", ".zip")) as archive:
        archive.extractall(folder)
    return folder / name


def _roundtrip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _as_frames(ds: Dataset) -> np.ndarray:
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr.reshape(frames, ds.Rows, ds.Columns, -1)


def _synthetic(
    modality: str = "US", bits: int = 8, stored: int = 8, frames: int = 1, **extra: object
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 40, 50, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, stored, stored - 1, 0
    dtype = np.uint8 if bits == 8 else np.uint16
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.full((frames, 40, 50), (1 << stored) - 1, dtype=dtype).tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def _rules(tmp_path: Path, *rules: dict) -> str:
    path = tmp_path / "masks.json"
    path.write_text(json.dumps({"version": 1, "rules": list(rules)}))
    return str(path)


def _screen(lines: dict[tuple[int, int], str], rows: int = 480, columns: int = 640) -> np.ndarray:
    """A grey frame of speckle-like noise with text rendered at (left, top) positions."""
    image = Image.fromarray(np.random.default_rng(7).integers(0, 70, (rows, columns), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    for (left, top), text in lines.items():
        draw.text((left, top), text, fill=255, font=font)
    return np.asarray(image)


def _with_frame(ds: Dataset, frame: np.ndarray) -> Dataset:
    ds.Rows, ds.Columns = frame.shape
    ds.PixelData = frame.tobytes()
    return ds


def _read_nothing(ds: Dataset) -> None:
    for frame in _as_frames(ds):
        assert ocr.read_text(frame) == [], "OCR still reads text in the cleaned frame"


# --- risk triage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Modality": "CT", "BurnedInAnnotation": "YES"}, True),
        ({"Modality": "US", "BurnedInAnnotation": "NO"}, False),
        ({"Modality": "US"}, True),
        ({"Modality": "XA"}, True),
        ({"Modality": "ES"}, True),
        ({"Modality": "OT"}, True),
        ({"Modality": "SC"}, True),
        ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}, False),
        ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "BurnedInAnnotation": ""}, False),
        ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7.4"}, True),
        ({"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.3.1"}, True),
        ({"Modality": "GM", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.2.1"}, True),
    ],
)
def test_burned_in_risk_by_annotation_modality_and_class(changes: dict, expected: bool) -> None:
    ds = _synthetic(**changes)
    assert burned_in_risk(ds) is expected


def test_objects_without_pixel_data_are_never_at_risk() -> None:
    ds = _synthetic(BurnedInAnnotation="YES")
    del ds.PixelData
    assert burned_in_risk(ds) is False


def test_encapsulated_document_and_video_and_unknown_objects_are_at_risk() -> None:
    pdf = Dataset()
    pdf.SOPClassUID, pdf.Modality = "1.2.840.10008.5.1.4.1.1.104.1", "DOC"
    pdf.EncapsulatedDocument = b"%PDF-1.4 ..."
    assert burned_in_risk(pdf) is True
    with pytest.raises(PixelCleaningError) as caught:
        clean_pixel_data(pdf)
    assert caught.value.code == "encapsulated_document"

    video = _synthetic(Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2")
    video.file_meta.TransferSyntaxUID = MPEG4HP41
    assert burned_in_risk(video) is True

    unknown = _synthetic()
    del unknown.Modality, unknown.SOPClassUID
    assert burned_in_risk(unknown) is True


# --- the deid-data ultrasounds -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "GREYSCALE_IMAGE.dcm",
        "RGB_IMAGE.dcm",
        pytest.param("GREYSCALE_CINE.dcm", marks=pytest.mark.slow),
        pytest.param("RGB_CINE.dcm", marks=pytest.mark.slow),
    ],
)
def test_burned_in_names_are_zeroed_in_every_frame(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = _ultrasound(name, tmp_path_factory)
    ds = pydicom.dcmread(source)
    before = _as_frames(ds).copy()
    for top, bottom in KNOWN_TEXT[name]:
        assert before[:, top:bottom].any(), "the known text region must hold text before cleaning"
    assert burned_in_risk(ds)

    assert clean_pixel_data(ds) == "masked"
    out = _roundtrip(ds)

    assert out.BurnedInAnnotation == "NO"
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    after = _as_frames(out)
    assert after.shape == before.shape
    for top, bottom in KNOWN_TEXT[name]:
        assert not after[:, top:bottom].any(), f"rows {top}-{bottom} still carry pixels"
    for left, top, right, bottom in mask_rectangles(out):
        assert not after[:, top:bottom, left:right].any(), "the known-layout mask is applied"
    changed = (after != before).any(axis=(0, 3))
    assert changed.mean() < 0.2, "OCR masks text regions, not the image"
    assert ocr.read_text(after[0]) == [] and ocr.read_text(after[-1]) == []


@pytest.mark.slow
def test_multiframe_ultrasound_without_a_model_rule_gets_the_top_band(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    ds = pydicom.dcmread(ULTRASOUNDS / "ultrasound-multiframe.dcm")
    clean_pixel_data(ds)
    out = _roundtrip(ds)
    assert out.NumberOfFrames == 30 and out.PlanarConfiguration == 0
    assert not _as_frames(out)[:, :19].any()
    _read_nothing(out)


# --- text outside any known layout ------------------------------------------------------------


def test_a_text_box_reaching_below_the_top_band_is_masked_to_its_last_row() -> None:
    """The issue's case: the generic band covers rows 0-47; the header box runs to row 70."""
    frame = _screen(
        {(10, 8): "DOE^JANE ID 4711093", (10, 28): "DOB 03/14/1961 F", (10, 48): "ST MARY HOSPITAL"}
    )
    ds = _with_frame(_synthetic(Manufacturer="Nowhere Inc"), frame)
    assert mask_rectangles(ds) == [(0, 0, 640, 48)]
    assert len(ocr.read_text(frame)) == 3

    clean_pixel_data(ds)
    out = _roundtrip(ds)
    after = _as_frames(out)[0, ..., 0]
    text = frame == 255
    assert text[48:].any() and not after[text].any(), "every text pixel is blank, below the band too"
    assert np.array_equal(after[120:], frame[120:]), "the image below is untouched"
    assert out.BurnedInAnnotation == "NO"
    _read_nothing(out)


@pytest.mark.parametrize("modality", ["OT", "SC", "XA", "ES"])
def test_objects_without_a_mask_rule_are_cleaned_by_ocr(modality: str) -> None:
    frame = _screen({(200, 300): "SMITH^JOHN", (420, 440): "MRN 00123456"})
    ds = _with_frame(_synthetic(modality=modality, SOPClassUID="1.2.840.10008.5.1.4.1.1.7"), frame)
    assert mask_rectangles(ds) == []

    clean_pixel_data(ds)
    after = _as_frames(_roundtrip(ds))[0, ..., 0]
    assert not after[frame == 255].any(), "every text pixel is blank"
    assert (after != frame).mean() < 0.05
    _read_nothing(_roundtrip(ds))


def test_text_left_after_the_last_round_quarantines_without_revealing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no masking round the re-check must see the text, refuse, and leave the object as it was."""
    monkeypatch.setattr(pixels, "MASK_ROUNDS", 0)
    ds = _with_frame(_synthetic(), _screen({(200, 200): "DOE^JANE 03/14/1961", (200, 260): "4711093512"}))
    ds.PatientName = "DOE^JANE"
    _unchanged_after_error(ds, "ocr_text_found")
    with pytest.raises(PixelCleaningError) as caught:
        clean_pixel_data(ds)
    message = str(caught.value)
    assert "date" in message and "digit_run" in message
    assert "DOE" not in message and "1961" not in message and "4711093512" not in message


def test_same_object_cleans_to_the_same_bytes() -> None:
    frame = _screen({(30, 400): "ACC 99812 LEFT"})
    first, second = _with_frame(_synthetic(), frame), _with_frame(_synthetic(), frame.copy())
    clean_pixel_data(first)
    clean_pixel_data(second)
    assert first.PixelData == second.PixelData


# --- compressed pixel data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reference", "lossy_method"),
    [
        ("US1_J2KR.dcm", "US1_UNCR.dcm", None),  # JPEG 2000 lossless, YBR_RCT
        ("US1_J2KI.dcm", None, "ISO_15444_1"),  # JPEG 2000, YBR_ICT
        ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm", None),  # lossless JPEG, selection value 1
        ("JPEG-LL.dcm", None, None),  # lossless JPEG, 16-bit MONOCHROME2
        ("SC_rgb_jls_lossy_line.dcm", None, "ISO_14495_1"),  # JPEG-LS near-lossless
        ("JPEGLSNearLossless_08.dcm", None, "ISO_14495_1"),
        ("SC_rgb_rle.dcm", "SC_rgb.dcm", None),
        ("SC_rgb_jpeg_dcmtk.dcm", None, "ISO_10918_1"),  # JPEG baseline
    ],
)
def test_compressed_pixel_data_is_decoded_cleaned_and_written_native(
    name: str, reference: str | None, lossy_method: str | None
) -> None:
    ds = pydicom.dcmread(sample_file(name))
    ds.Modality = ds.get("Modality") or "OT"
    decoded = _as_frames(ds).copy()
    if reference:
        assert np.array_equal(decoded, _as_frames(pydicom.dcmread(sample_file(reference))))

    clean_pixel_data(ds)
    out = _roundtrip(ds)

    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert out.PhotometricInterpretation in ("RGB", "MONOCHROME2")
    assert out.get("LossyImageCompressionMethod") == lossy_method
    assert (out.get("LossyImageCompression") == "01") is (lossy_method is not None)
    after = _as_frames(out)
    touched = (after != decoded).any(axis=(0, 3))
    assert not after[:, touched].any(), "every changed pixel is blanked, no other pixel changes"
    _read_nothing(out)


# --- JPEG baseline, palette, YBR, high bits --------------------------------------------------


@pytest.mark.slow
def test_a_cine_whose_masked_frames_still_read_as_text_is_refused_unchanged() -> None:
    """pydicom-data's 120-frame JPEG SonoSite cine: after masking the detected text, OCR still
    reads characters in its speckle on many frames, so it is refused (quarantined), never
    published with text possibly left, and the dataset is left as it was."""
    ds = pydicom.dcmread(sample_file("color3d_jpeg_baseline.dcm"))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit and ds.PhotometricInterpretation == "YBR_FULL_422"
    _unchanged_after_error(ds, "ocr_text_found")


def test_custom_rule_file_masks_a_jpeg_secondary_capture(tmp_path: Path) -> None:
    ds = pydicom.dcmread(sample_file("SC_rgb_jpeg_dcmtk.dcm"))
    assert mask_rectangles(ds) == []

    rules = _rules(
        tmp_path,
        {
            "id": "ot-corner",
            "modality": "OT",
            "rows": 100,
            "columns": 100,
            "units": "pixels",
            "rectangles": [[10, 20, 60, 30]],
        },
    )
    assert mask_rectangles(ds, rules) == [(10, 20, 60, 30)]
    clean_pixel_data(ds, rules)
    after = _as_frames(_roundtrip(ds))
    assert not after[0, 20:30, 10:60].any() and after[0, 40:].any()


def test_palette_color_and_uncompressed_ybr_are_masked() -> None:
    palette = pydicom.dcmread(sample_file("OBXXXX1A.dcm"))
    clean_pixel_data(palette)
    out = _roundtrip(palette)
    assert out.PhotometricInterpretation == "PALETTE COLOR"
    assert not out.pixel_array[:60].any()

    ybr = pydicom.dcmread(sample_file("SC_ybr_full_422_uncompressed.dcm"))
    ybr.Modality = "US"
    clean_pixel_data(ybr)
    out = _roundtrip(ybr)
    assert out.PhotometricInterpretation == "RGB" and not out.pixel_array[:10].any()


def test_bits_above_bits_stored_are_cleared_and_frame_count_kept() -> None:
    ds = _synthetic(bits=16, stored=12, frames=1)
    ds.NumberOfFrames = 1
    ds.PixelData = np.full((40, 50), 0xF123, dtype=np.uint16).tobytes()
    clean_pixel_data(ds)
    out = _roundtrip(ds)
    assert out.NumberOfFrames == 1
    assert int(out.pixel_array.max()) == 0x0123


# --- failing closed --------------------------------------------------------------------------


def _unchanged_after_error(ds: Dataset, code: str, rules: str | None = None) -> None:
    before = ds.to_json()
    with pytest.raises(PixelCleaningError) as caught:
        clean_pixel_data(ds, rules)
    assert caught.value.code == code
    assert ds.to_json() == before, "a failed clean must leave the dataset untouched"


def test_unsupported_transfer_syntax_is_refused() -> None:
    ds = _synthetic()
    ds.file_meta.TransferSyntaxUID = MPEG4HP41  # video: no pixel plugin decodes it frame by frame
    _unchanged_after_error(ds, "unsupported_transfer_syntax")


def test_truncated_pixel_data_is_undecodable() -> None:
    ds = _synthetic()
    ds.PixelData = ds.PixelData[:100]
    _unchanged_after_error(ds, "undecodable")


def test_unsupported_pixel_format_is_refused() -> None:
    ds = _synthetic()
    ds.BitsAllocated = 1
    _unchanged_after_error(ds, "unsupported_pixel_format")


def test_error_messages_carry_no_header_values() -> None:
    ds = _synthetic(modality="XA", PatientName="Secret^Person", Manufacturer="Secret Corp")
    ds.BitsAllocated = 1
    with pytest.raises(PixelCleaningError) as caught:
        clean_pixel_data(ds)
    assert "Secret" not in str(caught.value)


# --- mask rules as data ----------------------------------------------------------------------


def test_shipped_rules_load_and_every_rule_has_a_note() -> None:
    rules = load_mask_rules()
    assert {r.id for r in rules} >= {"us-top-band", "siemens-s2000-768x1024", "terason-672x1016"}
    raw = json.loads(Path(__file__).resolve().parents[2].joinpath("schemas/deid/masks.json").read_text())
    assert all(rule.get("note") for rule in raw["rules"])


def test_most_specific_rule_wins_and_ties_are_united(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        {"id": "generic", "modality": "US", "units": "fraction", "rectangles": [[0, 0, 1, 0.5]]},
        {"id": "by-model", "modality": "US", "model": "M1", "units": "pixels", "rectangles": [[0, 0, 5, 5]]},
        {
            "id": "by-size",
            "modality": "US",
            "rows": 40,
            "columns": 50,
            "units": "pixels",
            "rectangles": [[10, 10, 20, 20]],
        },
    )
    assert mask_rectangles(_synthetic(), rules) == [(10, 10, 20, 20)]
    assert sorted(mask_rectangles(_synthetic(ManufacturerModelName=" m1 "), rules)) == [
        (0, 0, 5, 5),
        (10, 10, 20, 20),
    ]
    assert mask_rectangles(_synthetic(Rows=30), rules) == [(0, 0, 50, 15)]


@pytest.mark.parametrize(
    "rule",
    [
        {"id": "no-modality", "units": "pixels", "rectangles": [[0, 0, 1, 1]]},
        {"id": "bad-units", "modality": "US", "units": "inches", "rectangles": [[0, 0, 1, 1]]},
        {"id": "empty", "modality": "US", "units": "pixels", "rectangles": [[5, 0, 5, 1]]},
        {"id": "fraction-too-big", "modality": "US", "units": "fraction", "rectangles": [[0, 0, 2, 1]]},
    ],
)
def test_invalid_rules_are_rejected(tmp_path: Path, rule: dict) -> None:
    with pytest.raises(ConfigError):
        load_mask_rules(_rules(tmp_path, rule))


def test_duplicate_criteria_are_rejected(tmp_path: Path) -> None:
    rule = {"id": "a", "modality": "US", "units": "pixels", "rectangles": [[0, 0, 1, 1]]}
    with pytest.raises(ConfigError):
        load_mask_rules(_rules(tmp_path, rule, dict(rule, id="b")))


def test_rle_lossless_is_decoded_and_written_native() -> None:
    ds = pydicom.dcmread(sample_file("MR_small_RLE.dcm"))
    ds.Modality = "US"  # as if it were a risky object: the US top band applies
    original = _as_frames(ds).copy()
    clean_pixel_data(ds)
    out = _roundtrip(ds)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    after = _as_frames(out)
    touched = (after != original).any(axis=(0, 3))
    assert not after[:, :7].any() and not after[:, touched].any()
    assert "LossyImageCompression" not in out


@pytest.mark.parametrize(
    ("big_endian", "little_endian"),
    [("SC_rgb_expb_16bit.dcm", "SC_rgb_16bit.dcm"), ("gdcm-US-ALOKA-16_big.dcm", "gdcm-US-ALOKA-16.dcm")],
)
def test_big_endian_pixel_data_is_cleaned_and_written_little_endian(big_endian: str, little_endian: str) -> None:
    """Explicit VR Big Endian (retired, still in archives) is masked like its little-endian twin,
    with the same pixels, and written little endian."""
    masked = []
    for name in (big_endian, little_endian):
        ds = pydicom.dcmread(sample_file(name))
        assert clean_pixel_data(ds, None) == "masked"
        out = pydicom.dcmread(io.BytesIO(write_part10(ds)))
        assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert out.BurnedInAnnotation == "NO"
        masked.append(out.pixel_array)
    assert masked[0].dtype.isnative and np.array_equal(masked[0], masked[1])
