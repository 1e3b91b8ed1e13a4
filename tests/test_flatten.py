"""flatten + rows_to_tables on real DICOM files, written to Delta and read back with polars."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pydicom
import pytest
from pydicom import Dataset

from lakehouse.config import ZoneSettings
from lakehouse.errors import DicomParseError, LakeError
from lakehouse.flatten import FlatRows, Provenance, flatten, promoted_columns, rows_to_tables
from lakehouse.flatten.columns import COMPUTED_COLUMNS, promoted_from_spec
from lakehouse.lake import Column, Table, TableSpec, delta_storage_options, table_spec

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PROVENANCE = Provenance("run-1", "req-1", "proj", "PS3.15-2026d basic", ("retain_long_modified_dates",))
CLASS_UID_ROOT = "1.2.840.10008."


def dicom_path(name: str) -> Path:
    path = PYDICOM_FILES / name
    if not path.exists():  # pydicom-data's store (installed, never downloaded here)
        import data_store  # type: ignore[import-not-found]

        path = Path(data_store.__file__).parent / "data" / name
    return path


def pseudonymize(ds: Dataset) -> Dataset:
    """A stand-in for the de-identifier: every non-standard UID → 2.25.<hash>, IDs → tokens."""

    def walk(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "UI" and elem.value:
                values = list(elem.value) if elem.VM > 1 else [elem.value]
                new = [v if str(v).startswith(CLASS_UID_ROOT) else _uid(str(v)) for v in values]
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR == "SQ":
                for item in elem.value:
                    walk(item)

    walk(ds)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword in ("PatientID", "AccessionNumber", "StudyID"):
        if keyword in ds:
            source = str(ds.data_element(keyword).value)
            ds.data_element(keyword).value = "T" + hashlib.sha256(source.encode()).hexdigest()[:12]
    if "PatientName" in ds:
        ds.PatientName = "ANON"
    return ds


def _uid(source: str) -> str:
    return "2.25." + str(int(hashlib.sha256(source.encode()).hexdigest()[:32], 16))


def flat(name: str, ds: Dataset | None = None) -> FlatRows:
    ds = pseudonymize(ds if ds is not None else pydicom.dcmread(dicom_path(name)))
    return flatten(
        ds, PROVENANCE, object_key=f"proj/objects/{name}", object_sha256="ab" * 32, object_size=1234
    )


def test_ct_gives_typed_promoted_columns() -> None:
    rows = flat("CT_small.dcm")
    inst, study, series = rows.instance, rows.study, rows.series
    assert inst["SOPInstanceUID"].startswith("2.25.")
    assert inst["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2"
    assert inst["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"  # from the file meta
    assert inst["Rows"] == 128 and inst["Columns"] == 128
    assert inst["PixelSpacing"] == [0.661468, 0.661468]
    assert inst["ImagePositionPatient"] == [-158.135803, -179.035797, -75.699997]
    assert inst["SliceThickness"] == 5.0
    assert inst["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert inst["InstanceNumber"] == 1
    assert inst["AcquisitionDate"] == date(1997, 4, 30)
    assert inst["AcquisitionTime"] == "112936"
    assert inst["NumberOfFrames"] is None
    assert (inst["object_key"], inst["object_size"]) == ("proj/objects/CT_small.dcm", 1234)
    assert study["StudyDate"] == date(2004, 1, 19)
    assert study["StudyTime"] == "072730"
    assert study["PatientWeight"] == 0.0
    assert (series["Modality"], series["SeriesNumber"], series["Manufacturer"]) == (
        "CT",
        1,
        "GE MEDICAL SYSTEMS",
    )
    assert series["StudyInstanceUID"] == study["StudyInstanceUID"] == inst["StudyInstanceUID"]
    for row in (inst, study, series, *rows.attributes):
        assert row["export_run_id"] == "run-1" and row["request_id"] == "req-1"
        assert row["deid_profile"] == "PS3.15-2026d basic"
        assert row["deid_options"] == ["retain_long_modified_dates"]


def test_header_json_is_complete_without_pixel_data() -> None:
    ds = pseudonymize(pydicom.dcmread(dicom_path("CT_small.dcm")))
    rows = flatten(ds, PROVENANCE, object_key="k", object_sha256="0" * 64, object_size=1)
    header = json.loads(rows.instance["header_json"])
    assert header["7FE00010"] == {"vr": "OW"}
    back = Dataset.from_json(rows.instance["header_json"])
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.PixelSpacing == ds.PixelSpacing
    assert len(back) == len(ds)


def test_attributes_cover_every_depth_with_paths() -> None:
    rows = flat("rtplan.dcm")
    paths = [a["path"] for a in rows.attributes]
    assert len(paths) == len(set(paths))
    nested = [a for a in rows.attributes if a["depth"] == 2]
    assert nested, "rtplan has sequences two levels deep"
    a = nested[0]
    assert a["path"].count("[") == 2 and a["path"].split(".")[-1] == a["tag"]
    beams = next(a for a in rows.attributes if a["keyword"] == "BeamSequence")
    assert beams["vr"] == "SQ" and beams["value_text"] is None and beams["value_count"] >= 1
    first_beam_number = next(a for a in rows.attributes if a["path"] == "300A00B0[0].300A00C0")
    assert first_beam_number["keyword"] == "BeamNumber" and first_beam_number["value_number"] == 1.0


def test_structured_report_content_tree() -> None:
    rows = flat("test-SR.dcm")
    assert rows.instance["Modality"] == "SR"
    assert rows.instance["Rows"] is None
    texts = [a for a in rows.attributes if a["keyword"] == "TextValue"]
    assert texts and all(a["depth"] >= 1 and a["path"].startswith("0040A730[") for a in texts)
    codes = [a for a in rows.attributes if a["keyword"] == "CodeValue"]
    assert codes and all(a["value_text"] for a in codes)


def test_multiframe_and_binary_values() -> None:
    rows = flat("emri_small.dcm")
    assert rows.instance["NumberOfFrames"] == 10
    assert rows.instance["Modality"] == "MR"
    pixel = next(a for a in rows.attributes if a["tag"] == "7FE00010")
    assert pixel["value_text"] is None and pixel["value_number"] is None and pixel["value_count"] == 1
    rows_attr = next(a for a in rows.attributes if a["keyword"] == "Rows")
    assert rows_attr["value_number"] == 64.0 and rows_attr["value_text"] == "64"
    rgb = flat("SC_rgb_rle_2frame.dcm")
    assert rgb.instance["NumberOfFrames"] == 2 and rgb.instance["SamplesPerPixel"] == 3
    assert rgb.instance["PhotometricInterpretation"] == "RGB"


def test_bad_values_become_null_not_errors() -> None:
    ds = pydicom.dcmread(dicom_path("MR_small.dcm"))
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    for tag, vr, raw in [
        (0x00080020, "DA", b"2023"),
        (0x00180050, "DS", b"n/a "),
        (0x00200013, "IS", b"1.5 "),
    ]:
        ds[Tag(tag)] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)
    rows = flat("MR_small.dcm", ds)
    assert rows.study["StudyDate"] is None
    assert rows.instance["SliceThickness"] is None
    assert rows.instance["InstanceNumber"] is None
    by_keyword = {a["keyword"]: a for a in rows.attributes}
    assert by_keyword["StudyDate"]["value_text"] == "2023"
    assert by_keyword["SliceThickness"]["value_number"] is None
    assert json.loads(rows.instance["header_json"])["00180050"] == {"vr": "DS", "Value": [None]}


def test_missing_key_fails_without_values() -> None:
    ds = pseudonymize(pydicom.dcmread(dicom_path("CT_small.dcm")))
    secret = str(ds.StudyInstanceUID)
    del ds.SeriesInstanceUID
    with pytest.raises(DicomParseError) as info:
        flatten(ds, PROVENANCE, object_key="k", object_sha256="0" * 64, object_size=1)
    assert info.value.code == "missing_attribute"
    assert "SeriesInstanceUID" in str(info.value) and secret not in str(info.value)


def test_promoted_set_is_the_schema() -> None:
    names = [c.name for c in promoted_columns("instances")]
    assert "PixelSpacing" in names and "header_json" not in names
    spec = table_spec("instances")
    extended = TableSpec(
        spec.name,
        spec.zone,
        spec.version + 1,
        spec.description,
        spec.columns + (Column("Laterality", "string", True, "(0020,0060) Laterality."),),
    )
    assert promoted_from_spec(extended, COMPUTED_COLUMNS["instances"])[-1].name == "Laterality"
    bad = TableSpec(spec.name, spec.zone, 2, "", spec.columns + (Column("laterality", "string", True, ""),))
    with pytest.raises(LakeError, match="laterality"):
        promoted_from_spec(bad, COMPUTED_COLUMNS["instances"])


NAMES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "test-SR.dcm",
    "rtplan.dcm",
    "emri_small.dcm",
    "SC_rgb_rle_2frame.dcm",
]


def batch() -> list[FlatRows]:
    rows = [flat(n) for n in NAMES]
    # A second instance of the CT series: same study and series, new SOP Instance UID.
    ds = pydicom.dcmread(dicom_path("CT_small.dcm"))
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".2"
    ds.InstanceNumber = 2
    rows.append(flat("CT_small_2.dcm", ds))
    return rows


def test_rows_to_tables_deduplicates_and_is_order_independent() -> None:
    rows = batch()
    tables = rows_to_tables(rows)
    assert tables["instances"].num_rows == len(NAMES) + 1
    assert tables["series"].num_rows == len(NAMES)
    assert tables["studies"].num_rows == len(NAMES)
    assert tables["attributes"].num_rows == sum(len(r.attributes) for r in rows)
    for name, table in tables.items():
        assert table.schema == table_spec(name).arrow_schema
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    again = rows_to_tables(shuffled)
    assert all(again[name].equals(tables[name]) for name in tables)


def test_tables_written_to_delta_read_back_with_polars(tmp_path: Path) -> None:
    zone = ZoneSettings("research", str(tmp_path / "research"))
    tables = rows_to_tables(batch())
    for name, table in tables.items():
        location = Table(zone, table_spec(name), project="proj")
        assert location.commit_once(table, app_id="run-1", version=1)
        assert not location.commit_once(table, app_id="run-1", version=1)  # at most once
    instances = pl.read_delta(zone.join("proj/tables/instances")).sort("SOPInstanceUID")
    assert instances.to_arrow().cast(tables["instances"].schema).equals(tables["instances"])
    ct = instances.filter(pl.col("object_key") == "proj/objects/CT_small.dcm").row(0, named=True)
    assert ct["PixelSpacing"] == [0.661468, 0.661468]
    assert ct["StudyInstanceUID"].startswith("2.25.")
    assert Dataset.from_json(ct["header_json"]).Rows == 128
    studies = pl.read_delta(zone.join("proj/tables/studies"))
    assert studies.schema["StudyDate"] == pl.Date
    attributes = pl.read_delta(zone.join("proj/tables/attributes"))
    assert attributes.height == tables["attributes"].num_rows
    joined = attributes.join(instances.select("SOPInstanceUID", "Modality"), on="SOPInstanceUID")
    assert joined.height == attributes.height
    beam = attributes.filter(pl.col("path") == "300A00B0[0].300A00C0")
    assert beam["value_number"].to_list() == [1.0]


@pytest.mark.s3
def test_tables_on_s3_read_back_with_polars(s3_server) -> None:  # type: ignore[no-untyped-def]
    bucket = s3_server.new_bucket("research")
    zone = ZoneSettings(
        "research",
        f"s3://{bucket}/research",
        endpoint_url=s3_server.endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
    )
    tables = rows_to_tables([flat("CT_small.dcm"), flat("test-SR.dcm")])
    location = Table(zone, table_spec("attributes"), project="proj")
    location.append(tables["attributes"], app_id="run-1", version=1)
    back = pl.read_delta(zone.join("proj/tables/attributes"), storage_options=delta_storage_options(zone))
    assert back.height == tables["attributes"].num_rows
    assert set(back["SOPInstanceUID"].unique()) == set(
        tables["instances"].column("SOPInstanceUID").to_pylist()
    )
    assert {m for m, _, _ in s3_server.log.for_bucket(bucket)} >= {"PUT", "GET"}


def test_attribute_table_equals_its_rows_converted_one_by_one() -> None:
    rows = batch()
    tables = rows_to_tables(rows)
    ordered = sorted(rows, key=lambda r: r.instance["SOPInstanceUID"])
    one_by_one = pa.Table.from_pylist(
        [row for flat in ordered for row in flat.attributes], schema=table_spec("attributes").arrow_schema
    )
    assert tables["attributes"].equals(one_by_one)
    instances = pa.Table.from_pylist(
        [flat.instance for flat in ordered], schema=table_spec("instances").arrow_schema
    )
    assert tables["instances"].equals(instances)
    empty = rows_to_tables([])
    assert all(
        empty[name].num_rows == 0 and empty[name].schema == table_spec(name).arrow_schema for name in empty
    )


def test_flatten_lets_no_pydicom_warning_quote_a_value() -> None:
    """pydicom warns with the offending value (``Invalid value for VR UI: '...'``) when it
    converts a bad raw element; flatten silences that, as deidentify does."""
    import io
    import warnings

    ds = pydicom.dcmread(dicom_path("CT_small.dcm"))
    ds.FrameOfReferenceUID = "1.2.840.SECRETé"  # not a UID (and not ASCII): pydicom converts and warns
    buffer = io.BytesIO()
    ds.save_as(buffer)
    raw = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        str(raw[0x00200052].value)  # the same conversion outside flatten does warn ...
    assert any("SECRET" in str(w.message) for w in caught)
    raw = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = flatten(raw, PROVENANCE, object_key="proj/objects/x.dcm", object_sha256="ab" * 32, object_size=1)
    assert [str(w.message) for w in caught] == []  # ... inside it, nothing is said
    assert "SECRET" in rows.instance["header_json"]  # (the value itself is what de-identification cleans)
