"""Value typing (lakehouse.dicom.values) and DICOM JSON without bulk data (lakehouse.dicom.json)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from lakehouse.dicom.json import BULK_DATA_THRESHOLD, is_bulk_data, to_json, to_json_dict
from lakehouse.dicom.values import (
    element_values,
    parse_da,
    parse_dt,
    parse_float,
    parse_int,
    typed_value,
    value_count,
    value_number,
    value_text,
    values_number,
    values_text,
)
from lakehouse.errors import LakeError

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def with_raw_values(ds: Dataset, values: dict[str, tuple[str, bytes]]) -> Dataset:
    """Put undecoded values in ``ds``, as pydicom holds them right after reading a file;
    invalid ones then decode the way they do from real files (warn, keep the text)."""
    for keyword, (vr, raw) in values.items():
        tag = Tag(tag_for_keyword(keyword))
        ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)
    return ds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240229", date(2024, 2, 29)),
        ("1997.04.30", date(1997, 4, 30)),  # retired ACR-NEMA form
        (" 20010101 ", date(2001, 1, 1)),
        ("2023", None),
        ("202302", None),
        ("20230230", None),
        ("garbage!", None),
        ("", None),
    ],
)
def test_parse_da(text: str, expected: date | None) -> None:
    assert parse_da(text) == expected


def test_parse_dt() -> None:
    assert parse_dt("20240102030405.123456") == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parse_dt("20240102030405+0200") == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert parse_dt("20240102") == datetime(2024, 1, 2, tzinfo=UTC)
    assert parse_dt("2024") is None  # year only: too partial for a timestamp
    assert parse_dt("20241340") is None
    assert parse_dt("20240102+9900") is None


def test_parse_numbers() -> None:
    assert parse_float(" 1.5 ") == 1.5
    assert parse_float("1e3") == 1000.0
    assert parse_float("x") is None
    assert parse_float("nan") is None
    assert parse_float("inf") is None
    assert parse_int("3.0") == 3
    assert parse_int("3.5") is None
    assert parse_int("+12") == 12
    assert parse_int("99999999999", high=2**31 - 1) is None
    assert parse_int(True) is None


def test_typed_values_from_a_file_with_bad_values() -> None:
    ds = with_raw_values(
        Dataset(),
        {"StudyDate": ("DA", b"2023"), "SliceThickness": ("DS", b"x "), "InstanceNumber": ("IS", b"7 ")},
    )
    assert typed_value(ds["StudyDate"], "date") is None
    assert typed_value(ds["SliceThickness"], "double") is None
    assert value_number(ds["SliceThickness"]) is None
    assert typed_value(ds["InstanceNumber"], "int64") == 7
    assert value_text(ds["SliceThickness"]) == "x"


def test_typed_values_of_real_attributes() -> None:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    assert typed_value(ds["PixelSpacing"], "list<double>") == [0.661468, 0.661468]
    assert typed_value(ds["PixelSpacing"], "double") == 0.661468  # scalar column: first value
    assert typed_value(ds["ImageType"], "list<string>") == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert typed_value(ds["ImageType"], "string") == "ORIGINAL\\PRIMARY\\AXIAL"
    assert typed_value(ds["StudyDate"], "date") == date(2004, 1, 19)
    assert typed_value(ds["StudyDate"], "timestamp") == datetime(2004, 1, 19, tzinfo=UTC)
    assert typed_value(ds["Rows"], "int32") == 128
    assert typed_value(ds["PatientName"], "string") == "CompressedSamples^CT1"
    assert typed_value(ds["PixelData"], "string") is None
    assert value_text(ds["PixelData"]) is None
    assert value_count(ds["PixelData"]) == 1
    assert value_count(ds["ImageType"]) == 3
    assert value_number(ds["Rows"]) == 128.0
    assert value_number(ds["PatientName"]) is None
    with pytest.raises(LakeError):
        typed_value(ds["Rows"], "binary")


def test_value_text_of_at_and_sequences() -> None:
    at = DataElement(0x00209165, "AT", [0x00209111, 0x00209056])
    assert value_text(at) == "00209111\\00209056"
    seq = DataElement(0x00081140, "SQ", Sequence([Dataset(), Dataset()]))
    assert value_text(seq) is None
    assert value_count(seq) == 2


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "test-SR.dcm",
        "rtplan.dcm",
        "SC_rgb_rle_2frame.dcm",
        "waveform_ecg.dcm",
    ],
)
def test_dicom_json_round_trips_without_bulk_data(name: str) -> None:
    ds = pydicom.dcmread(TEST_FILES / name)
    text = to_json(ds)
    back = Dataset.from_json(text)

    def compare(original: Dataset, copy: Dataset) -> None:
        for elem in original:
            other = copy[elem.tag]
            assert other.VR == elem.VR
            if is_bulk_data(elem):
                assert other.is_empty, f"bulk {elem.tag} leaked into JSON"
            elif elem.VR == "SQ":
                assert len(other.value) == len(elem.value)
                for a, b in zip(elem.value, other.value, strict=True):
                    compare(a, b)
            else:
                assert other.value == elem.value, str(elem.tag)

    compare(ds, back)
    assert "BulkDataURI" not in text
    assert to_json(pydicom.dcmread(TEST_FILES / name)) == text  # deterministic bytes


def test_pixel_data_is_elided_at_any_depth_and_small_binary_is_inline() -> None:
    icon = Dataset()
    icon.Rows, icon.Columns = 2, 2
    icon.add_new(0x7FE00010, "OB", b"\x00\x01\x02\x03")  # tiny, but pixel data is always bulk
    ds = Dataset()
    ds.IconImageSequence = Sequence([icon])
    ds.add_new(0x60003000, "OW", b"\x00" * 8)  # overlay data
    ds.add_new(0x00091010, "OB", b"\x01\x02")  # small private binary: inline
    ds.add_new(0x00091011, "OB", b"\x00" * (BULK_DATA_THRESHOLD + 2))
    out = to_json_dict(ds)
    assert out["00880200"]["Value"][0]["7FE00010"] == {"vr": "OB"}
    assert out["00880200"]["Value"][0]["00280010"] == {"vr": "US", "Value": [2]}
    assert out["60003000"] == {"vr": "OW"}
    assert out["00091010"] == {"vr": "OB", "InlineBinary": "AQI="}
    assert out["00091011"] == {"vr": "OB"}


def test_invalid_numbers_become_null_and_text_stays_unescaped() -> None:
    ds = with_raw_values(Dataset(), {"SliceThickness": ("DS", b"x "), "PixelSpacing": ("DS", b"0.5\\bad ")})
    ds.StudyDescription = "Ünïcode"
    data = json.loads(to_json(ds))
    assert data["00180050"] == {"vr": "DS", "Value": [None]}
    assert data["00280030"] == {"vr": "DS", "Value": [0.5, None]}
    assert "Ünïcode" in to_json(ds)


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm"])
def test_json_visitor_sees_every_element_once_with_its_values(name: str) -> None:
    ds = pydicom.dcmread(TEST_FILES / name)
    seen: list[tuple[str, int, tuple[object, ...]]] = []

    def visit(
        tag: int, key: str, path: str, depth: int, vr: str, bulk: bool, values: list[object], count: int
    ) -> None:
        assert key == f"{tag:08X}" and path.endswith(key)
        seen.append((path, depth, (tag, vr, bulk, values_text(vr, values), values_number(vr, values), count)))

    expected: list[tuple[str, int, tuple[object, ...]]] = []

    def walk(d: Dataset, prefix: str, depth: int) -> None:  # pydicom's conversion of every element
        for elem in d:
            path = f"{prefix}{int(elem.tag):08X}"
            facts = (int(elem.tag), elem.VR, is_bulk_data(elem), value_text(elem), value_number(elem), value_count(elem))
            expected.append((path, depth, facts))
            if elem.VR == "SQ":
                for index, item in enumerate(elem.value):
                    walk(item, f"{path}[{index}].", depth + 1)

    text = to_json(ds, visit)
    walk(pydicom.dcmread(TEST_FILES / name), "", 0)
    assert seen == expected and max(depth for _, depth, _ in seen) >= 1
    assert text == to_json(pydicom.dcmread(TEST_FILES / name))  # visiting changes nothing


def test_multivalue_text_and_numbers_from_values() -> None:
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelSpacing = ["0.5", "0.25"]
    ds.StudyDescription = ""
    for keyword, text, number in [
        ("ImageType", "ORIGINAL\\PRIMARY\\AXIAL", None),
        ("PixelSpacing", value_text(ds["PixelSpacing"]), 0.5),  # DS text: see value_text
        ("StudyDescription", None, None),
    ]:
        elem = ds.data_element(keyword)
        assert elem is not None
        assert values_text(elem.VR, element_values(elem)) == text == value_text(elem)
        assert values_number(elem.VR, element_values(elem)) == number == value_number(elem)
    assert json.loads(to_json(ds))["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]}
    assert json.loads(to_json(ds))["00081030"] == {"vr": "LO"}


def test_decimal_strings_keep_their_stored_text_in_value_text() -> None:
    from pydicom.dataelem import DataElement

    from lakehouse.dicom.values import value_text

    assert value_text(DataElement(0x00280030, "DS", ["0.661468", "0.661468"])) == "0.661468\\0.661468"
    assert value_text(DataElement(0x00189087, "FD", 1000.5)) == "1000.5"
