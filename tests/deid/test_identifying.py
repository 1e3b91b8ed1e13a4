"""The one list of identifying attributes (schemas/deid/identifying_attributes.json) and what
each check makes of it: the header harvest (C action, residual scan, export gate) and OCR."""

from __future__ import annotations

import pydicom
from pydicom.data import get_testdata_file
from test_engine import make_ct, out, run

from lakehouse import resources
from lakehouse.deid import ocr
from lakehouse.deid.identifying import KINDS, checked_by, identifying_attributes, parts

INSTITUTION, STATION = 0x00080080, 0x00081010


def test_the_list_is_data_with_a_description_and_source_and_loads_checked() -> None:
    raw = resources.read_json("deid", "identifying_attributes.json")
    assert raw["description"] and raw["source"] and raw["version"] == 1
    table = identifying_attributes()
    assert len(table.attributes) == len(raw["attributes"]) and {a.kind for a in table.attributes} == KINDS
    assert identifying_attributes() is table, "loaded once per process"


def test_institution_and_station_are_identifying_on_screen_but_not_in_the_header_scan() -> None:
    header, pixels = checked_by("header"), checked_by("pixels")
    assert header[0x00100020] == "id" and header[0x00101040] == "address"
    assert INSTITUTION not in header and STATION not in header
    assert pixels[INSTITUTION] == pixels[STATION] == "site"
    assert set(header) <= set(pixels), "the screen check looks for everything the header check does"


def test_a_listed_id_repeated_in_a_kept_value_quarantines_the_object() -> None:
    ds = make_ct()
    ds.AdmissionID = "ADMTOKEN31"  # removed (X) and remembered as an id
    ds.ConvolutionKernel = "ADMTOKEN31"  # outside the table, allowlisted (technique): kept
    result = run(ds)
    assert result.outcome == "quarantined" and result.reason == "residual_phi"
    assert result.tag_path == "(0018,1210)"
    assert "ADMTOKEN31" in result.source_identifiers


def test_an_institution_name_repeated_by_the_kept_manufacturer_does_not_quarantine() -> None:
    # The shape of pydicom's MR_small: Institution Name TOSHIBA, Manufacturer TOSHIBA_MEC.
    published = out(run(make_ct(InstitutionName="TOSHIBA", Manufacturer="TOSHIBA_MEC")))
    assert "InstitutionName" not in published and published.Manufacturer == "TOSHIBA_MEC"
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert mr.InstitutionName in mr.Manufacturer


def test_ocr_looks_for_every_kind_of_the_list() -> None:
    ds = make_ct(PatientAddress="12 Elm Street^Springfield", AdmissionID="ADM77", StationName="RAD07")
    found = ocr.header_identifiers(ds)
    assert {"ZYXWVUT", "QWERTINA", "PIDTOKEN7781", "ADM77", "INSTOKENHOSPITAL", "RAD07"} <= found
    assert {"12ELMSTREET", "SPRINGFIELD"} <= found
    assert {"19500315", "03151950", "15MAR1950"} <= found
    assert "ANONYMIZED" not in found


def test_parts_of_each_kind() -> None:
    assert parts("name", "Doe^John=DOE^JOHN") == ["Doe", "John", "DOE", "JOHN"]
    assert parts("address", "12 Elm St, Springfield; IL") == ["12 Elm St", " Springfield", " IL"]
    assert parts("id", "A-1 2") == ["A-1 2"] and parts("site", "St Mary's") == ["St Mary's"]
