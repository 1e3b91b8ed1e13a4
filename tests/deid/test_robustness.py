"""Odd encodings and broken files: explicit VR UN for standard attributes is read by the
dictionary VR; truncated files and absurd lengths are quarantined, never published; any
per-object failure in ``lakehouse deid`` is a quarantine and the run goes on."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from corpora import sample_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit
from test_engine import KEY, PLANTED, SERIES_UID, SOP_UID, STUDY_UID, make_ct, to_bytes

from lakehouse.deid import DeidSettings, deidentify, pseudonymize_uid
from lakehouse.deid.batch import deidentify_files

SETTINGS = DeidSettings(project="p", key=KEY)


def _header_at(data: bytes, tag: int, vr: bytes) -> int:
    return data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr, 132)


def as_un(data: bytes, tag: int, vr: bytes) -> bytes:
    """Rewrite one short-form explicit VR element as explicit VR UN (what some writers do)."""
    at = _header_at(data, tag, vr)
    length = struct.unpack_from("<H", data, at + 6)[0]
    value = data[at + 8:at + 8 + length]
    return data[:at] + data[at:at + 4] + b"UN\x00\x00" + struct.pack("<L", length) + value + data[at + 8 + length:]


def test_standard_attributes_in_explicit_vr_un_are_replaced_by_their_dictionary_vr() -> None:
    data = to_bytes(make_ct())
    for tag, vr in ((0x00080018, b"UI"), (0x0020000D, b"UI"), (0x0020000E, b"UI"), (0x00100010, b"PN"),
                    (0x00100020, b"LO"), (0x00080020, b"DA"), (0x00081030, b"LO")):
        data = as_un(data, tag, vr)
    result = deidentify(data, SETTINGS)
    assert result.outcome == "deidentified", (result.reason, result.report)
    assert result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out.SOPInstanceUID == pseudonymize_uid(SOP_UID, KEY) == out.file_meta.MediaStorageSOPInstanceUID
    assert out.StudyInstanceUID == pseudonymize_uid(STUDY_UID, KEY)
    assert out.SeriesInstanceUID == pseudonymize_uid(SERIES_UID, KEY)
    assert out["SOPInstanceUID"].VR == "UI" and b"UN" not in result.data[132:300]
    assert not [e.tag for e in out.iterall() if e.VR == "UN"]
    assert not [t for t in PLANTED if t in result.data]


def test_un_standard_attributes_inside_sequence_items_are_read_by_their_dictionary_vr() -> None:
    ds = make_ct()
    ds.ReferencedImageSequence[0].is_undefined_length_sequence_item = True
    data = as_un(to_bytes(ds), 0x00081155, b"UI")  # Referenced SOP Instance UID, in an item
    at = _header_at(data, 0x00081140, b"SQ")  # the sequence grew by 4 bytes (a UN header is longer)
    length = struct.unpack_from("<L", data, at + 8)[0]
    data = data[:at + 8] + struct.pack("<L", length + 4) + data[at + 12:]
    result = deidentify(data, SETTINGS)
    assert result.outcome == "deidentified", result.reason
    assert result.data is not None
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == pseudonymize_uid(
        "1.2.826.0.1.3680043.8.498.1002", KEY)


@pytest.mark.parametrize(
    ("label", "damage", "reason"),
    [
        ("pixel data cut short", lambda d: d[:-1000], "truncated"),
        ("cut inside an element header", lambda d: d[:_header_at(d, 0x7FE00010, b"OW") + 6], "truncated"),
        ("cut in the middle of the header", lambda d: d[:900], "truncated"),
        ("cut before the pixel data: header only", lambda d: d[:_header_at(d, 0x7FE00010, b"OW")],
         "missing_pixel_data"),
        ("long length past the end", lambda d: _relength(d, 0x60003000, b"OW", 0x7FFFFFF0), "bad_length"),
        ("short length past the end", lambda d: _relength(d, 0x00081030, b"LO", 0xFFF0), "bad_length"),
    ],
)
def test_broken_files_are_quarantined_not_published(
    label: str, damage: Callable[[bytes], bytes], reason: str
) -> None:
    result = deidentify(damage(to_bytes(make_ct())), SETTINGS)
    assert (result.outcome, result.reason) == ("quarantined", reason), label
    assert result.data is None


def _relength(data: bytes, tag: int, vr: bytes, length: int) -> bytes:
    at = _header_at(data, tag, vr)
    if vr in (b"OW", b"OB", b"UN", b"SQ", b"UT"):
        return data[:at + 8] + struct.pack("<L", length) + data[at + 12:]
    return data[:at + 6] + struct.pack("<H", length) + data[at + 8:]


def test_cut_encapsulated_pixel_data_and_undefined_length_sequences_are_truncated() -> None:
    ds = make_ct()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8" + b"x" * 3000 + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    whole = to_bytes(ds)
    assert deidentify(whole, SETTINGS).outcome == "deidentified"
    for cut in (len(whole) - 8, len(whole) - 500):  # before the delimiter; inside the fragment
        assert deidentify(whole[:cut], SETTINGS).reason == "truncated"
    ds = make_ct()
    ds.ReferencedImageSequence.is_undefined_length = True
    data = to_bytes(ds)
    at = _header_at(data, 0x00081140, b"SQ")
    assert deidentify(data[:at + 40], SETTINGS).reason == "truncated"


def test_every_cut_of_a_file_is_quarantined() -> None:
    """Wherever the file is cut (after its file meta), nothing is published."""
    data = to_bytes(make_ct())
    start = _header_at(data, 0x00080005, b"CS")
    published = [cut for cut in range(start + 1, len(data), 7) if deidentify(data[:cut], SETTINGS).data]
    assert published == []


def test_truncated_files_of_the_pydicom_corpus_are_truncated() -> None:
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        result = deidentify(sample_file(name).read_bytes(), SETTINGS)
        assert (result.outcome, result.reason) == ("quarantined", "truncated"), name


def test_batch_quarantines_duplicates_and_failures_and_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    original = to_bytes(make_ct())
    (src / "a.dcm").write_bytes(original)
    (src / "b.dcm").write_bytes(to_bytes(make_ct(SeriesDescription="other")))  # same SOP Instance UID
    (src / "c.dcm").write_bytes(original[:-1000])  # truncated copy
    files = sorted(src.iterdir()) + [src / "vanished.dcm"]
    out = tmp_path / "out"
    outcomes = list(deidentify_files(files, out, SETTINGS))
    assert [(o.outcome, o.reason) for o in outcomes] == [
        ("deidentified", None), ("quarantined", "duplicate_output"), ("quarantined", "truncated"),
        ("quarantined", "processing_error"),
    ]
    assert outcomes[3].error == "FileNotFoundError"
    (written,) = out.iterdir()
    assert written.read_bytes() == deidentify(original, SETTINGS).data  # the first one, intact
    again = list(deidentify_files(files[:2], out, SETTINGS))  # a re-run: same bytes, nothing replaced
    assert [(o.outcome, o.reason) for o in again] == [("deidentified", None), ("quarantined", "duplicate_output")]
    assert written.read_bytes() == deidentify(original, SETTINGS).data
