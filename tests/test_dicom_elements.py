"""Element access without decoding (``lakehouse.dicom.elements``) on real files: the raw
walker's paths and texts match pydicom's conversion, and what is only looked at stays raw."""

from __future__ import annotations

import copy
import io

import pydicom
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from lakehouse.dicom.elements import element_vr, put, replaced_value, set_value, text_values, value_text

TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT", "UN"})


def read(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()), force=True)


def unpadded(text: str | None) -> str | None:
    """Raw text keeps the padding pydicom strips from each value; nothing else differs."""
    return None if text is None else "\\".join(v.rstrip(" \x00") for v in text.split("\\"))


def nested() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    ds.PatientName = "Doe^Jane"
    ds.StudyDate = "20200101\\20200102"
    inner = Dataset()
    inner.TextValue = "first"
    second = Dataset()
    second.TextValue = "second"
    second.ContentSequence = Sequence([Dataset()])
    second.ContentSequence[0].PersonName = "Roe^Rick"
    ds.ContentSequence = Sequence([inner, second])
    ds.add_new(0x00091010, "UN", b"PRIVATE BYTES")
    return read(ds)


def test_text_values_walks_depth_first_with_tag_paths_and_leaves_values_raw() -> None:
    ds = nested()
    found = [(path, vr, unpadded(text)) for path, vr, text in text_values(ds, TEXT_VRS)]
    assert found == [
        ("(0008,0016)", "UI", "1.2.840.10008.5.1.4.1.1.7"),
        ("(0008,0018)", "UI", "1.2.3.4"),
        ("(0008,0020)", "DA", "20200101\\20200102"),
        ("(0009,1010)", "UN", "PRIVATE BYTES"),
        ("(0010,0010)", "PN", "Doe^Jane"),
        ("(0040,A730)[0].(0040,A160)", "UT", "first"),
        ("(0040,A730)[1].(0040,A160)", "UT", "second"),
        ("(0040,A730)[1].(0040,A730)[0].(0040,A123)", "PN", "Roe^Rick"),
    ]
    assert isinstance(ds.get_item(0x00080020), RawDataElement), "looked at, not converted"
    assert isinstance(ds.get_item(0x00100010), RawDataElement)
    assert [path for path, _, _ in text_values(ds, frozenset({"DA"}))] == ["(0008,0020)"]


def test_value_text_is_what_pydicom_converts_in_every_character_set() -> None:
    for path in get_charset_files():
        ds = pydicom.dcmread(path, force=True)
        converted = copy.deepcopy(ds)
        for tag, stored in list(ds.items()):
            vr = element_vr(ds, tag, stored)
            if vr in ("SQ", "UN") or vr not in TEXT_VRS:
                continue
            value = converted[tag].value
            values = list(value) if isinstance(value, MultiValue) else [value]
            expected = "\\".join(map(str, values)) if value not in (None, "") else None
            text = value_text(ds, tag, ds.get_item(tag, keep_deferred=True))
            assert unpadded(text) == expected, (path, tag)


def test_replaced_values_are_decoded_from_raw_as_pydicom_would() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for tag in (0x00080018, 0x0020000D, 0x00080020):
        vr = element_vr(ds, tag)
        raw = replaced_value(ds, tag, vr)
        assert isinstance(ds.get_item(tag), RawDataElement)
        assert raw == copy.deepcopy(ds)[tag].value
    set_value(ds, 0x00080020, "DA", "19000101")
    assert isinstance(ds.get_item(0x00080020), DataElement) and ds.StudyDate == "19000101"
    set_value(ds, 0x00080020, "DA", "19000102")
    assert ds.StudyDate == "19000102"


def test_put_keeps_an_existing_vr_and_adds_a_missing_element() -> None:
    ds = Dataset()
    ds.add_new(0x00120063, "LO", "old")
    put(ds, 0x00120063, "SH", ["a", "b"])
    put(ds, 0x00120062, "CS", "YES")
    assert ds[0x00120063].VR == "LO" and list(ds.DeidentificationMethod) == ["a", "b"]
    assert ds.PatientIdentityRemoved == "YES"
    assert element_vr(Dataset(), 0x00100010) == "PN" and element_vr(Dataset(), 0x00091010) == "UN"
