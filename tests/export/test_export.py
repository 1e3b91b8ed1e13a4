"""The export job end to end on local folders: publish, read back, no identifiers, idempotence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from export_testing import PROJECT, TABLES, objects, prepare, read_table
from lakehouse_testing import Prepared

from lakehouse import governance, lake
from lakehouse.catalog import read_catalog
from lakehouse.errors import Refused
from lakehouse.export import GateFailed, export_status, purge_patient, purge_request, run_export


def source_identifiers(prepared: Prepared) -> set[str]:
    catalog = read_catalog(prepared.settings).to_pylist()
    values: set[str] = set()
    for row in catalog:
        for col in ("patient_id", "accession_number", "study_instance_uid", "series_instance_uid", "sop_instance_uid"):
            if row[col]:
                values.add(row[col])
        for part in (row["patient_name"] or "").replace("^", " ").split():
            values.add(part)
    return {v for v in values if len(v) >= 5}


def test_export_publishes_objects_and_tables(prepared: Prepared) -> None:
    outcome = run_export(prepared.settings, prepared.request_id, user="olga")
    state = outcome.state
    assert state.status == "succeeded" and not outcome.resumed
    assert state.exported > 0
    assert state.exported + sum(state.quarantined.values()) == state.planned_objects
    # Synthetic US objects carry burned-in text and the request has no clean-pixel-data option.
    assert state.quarantined.get("burned_in_risk", 0) >= 1

    instances = read_table(prepared.root, PROJECT, "instances")
    assert instances.height == state.exported
    assert instances["SOPInstanceUID"].str.starts_with("2.25.").all()
    assert instances["SOPInstanceUID"].n_unique() == instances.height
    published = objects(prepared.root, PROJECT)
    assert len(published) == state.exported
    assert set(instances["object_key"].to_list()) == {f"{PROJECT}/objects/{k}" for k in published}

    # A second reader over the same Delta tables: DuckDB on the Arrow data.
    studies = read_table(prepared.root, PROJECT, "studies").to_arrow()
    n_studies = duckdb.sql("select count(distinct StudyInstanceUID) from studies").fetchall()[0][0]
    assert n_studies == studies.num_rows == instances["StudyInstanceUID"].n_unique()
    attributes = read_table(prepared.root, PROJECT, "attributes")
    assert set(attributes["SOPInstanceUID"].unique().to_list()) == set(instances["SOPInstanceUID"].to_list())

    # Lineage (restricted) links every published object back; quarantine names reasons only.
    lineage = lake.table(prepared.settings, "lineage").read().to_pylist()
    assert len(lineage) == state.exported
    assert {r["output_key"] for r in lineage} == set(instances["object_key"].to_list())
    quarantine = lake.table(prepared.settings, "quarantine").read().to_pylist()
    assert sum(state.quarantined.values()) == len(quarantine)
    assert all(q["reason"] for q in quarantine)

    assert export_status(prepared.settings, state.run_id).status == "succeeded"


def test_nothing_identified_reaches_the_research_zone(prepared: Prepared) -> None:
    run_export(prepared.settings, prepared.request_id, user="olga")
    needles = [v.encode() for v in source_identifiers(prepared)]
    assert needles
    files = [p for p in (prepared.root / "research").rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".dcm" for p in files)
    for path in files:
        data = path.read_bytes()
        leaked = [n for n in needles if n in data]
        assert not leaked, f"{len(leaked)} source identifiers in {path.relative_to(prepared.root)}"
        assert b"alice" not in path.name.encode()


def test_rerun_is_idempotent(prepared: Prepared) -> None:
    first = run_export(prepared.settings, prepared.request_id, user="olga").state
    before = {t: read_table(prepared.root, PROJECT, t).height for t in TABLES}
    second = run_export(prepared.settings, prepared.request_id, user="olga").state
    assert second.status == "succeeded"
    assert second.exported == 0 and second.skipped_already_exported == first.exported
    assert {t: read_table(prepared.root, PROJECT, t).height for t in TABLES} == before


def test_second_request_same_project_shares_pseudonyms(prepared: Prepared) -> None:
    settings = prepared.settings
    run_export(settings, prepared.request_id, user="olga")
    other = governance.submit_request(
        settings, user="alice", project=PROJECT, title="CT only", purpose="More CT",
        protocol="IRB-2026-001", cohort={"modalities": ["CT"]},
        options=["retain-modified-dates", "clean-descriptors", "clean-structured-content", "clean-graphics"],
    )
    governance.approve(settings, other.id, user="carol", expires=date.today() + timedelta(days=5))
    state = run_export(settings, other.id, user="olga").state
    # Every CT object was already exported under the same profile: nothing new, no duplicates.
    assert state.exported == 0 and state.skipped_already_exported > 0
    instances = read_table(prepared.root, PROJECT, "instances")
    assert instances["SOPInstanceUID"].n_unique() == instances.height


def test_other_options_never_overwrite_what_the_project_holds(prepared: Prepared) -> None:
    settings = prepared.settings
    first = run_export(settings, prepared.request_id, user="olga").state
    before = objects(prepared.root, PROJECT)
    other = governance.submit_request(
        settings, user="alice", project=PROJECT, title="Basic only", purpose="p",
        protocol="IRB-2026-001", cohort={}, options=[],
    )
    governance.approve(settings, other.id, user="carol", expires=date.today() + timedelta(days=5))
    state = run_export(settings, other.id, user="olga").state
    assert state.exported == 0 and state.skipped_other_profile == first.exported
    assert objects(prepared.root, PROJECT) == before
    instances = read_table(prepared.root, PROJECT, "instances")
    assert instances.height == first.exported


def test_refusals_before_any_read(prepared: Prepared) -> None:
    settings = prepared.settings
    with pytest.raises(Refused, match="operators"):
        run_export(settings, prepared.request_id, user="alice")
    pending = governance.submit_request(
        settings, user="alice", project=PROJECT, title="t", purpose="p", protocol="IRB-9", cohort={}, options=[]
    )
    with pytest.raises(Refused):
        run_export(settings, pending.id, user="olga")
    expires = governance.get_request(settings, prepared.request_id).expires
    later = datetime.combine(expires, datetime.min.time(), tzinfo=UTC) + timedelta(days=2)
    with pytest.raises(Refused):
        run_export(settings, prepared.request_id, user="olga", now=later)
    governance.revoke(settings, prepared.request_id, user="root", reason="IRB withdrawn")
    with pytest.raises(Refused):
        run_export(settings, prepared.request_id, user="olga")
    assert not (prepared.root / "research" / PROJECT).exists()


def test_tampered_manifest_is_refused(prepared: Prepared) -> None:
    from deltalake import write_deltalake

    manifests = lake.table(prepared.settings, "governance_manifests")
    rows = manifests.read().to_pylist()
    rows[0]["key"] = rows[-1]["key"]  # point one entry at another archive object
    write_deltalake(manifests.uri, manifests.spec.to_arrow(rows), mode="overwrite")
    with pytest.raises(Refused, match="hash"):
        run_export(prepared.settings, prepared.request_id, user="olga")
    assert not (prepared.root / "research" / PROJECT).exists()


def test_gate_blocks_a_bad_batch_and_nothing_is_visible(prepared_template: Prepared, tmp_path: Path) -> None:
    # A project named like a real patient ID: the provenance column would carry a source
    # identifier into every research table. The gate must catch it and publish nothing.
    prepared = prepared_template.copy(tmp_path / "lh")
    patient_id = read_catalog(prepared.settings).column("patient_id").to_pylist()[0]
    request_id = prepare(prepared.config, project=patient_id)
    with pytest.raises(GateFailed) as excinfo:
        run_export(prepared.settings, request_id, user="olga")
    assert patient_id not in str(excinfo.value)
    report = prepared.root / "restricted" / excinfo.value.report_key
    assert report.is_file()
    assert not (prepared.root / "research" / patient_id / "tables").exists()
    assert not list((prepared.root / "research").rglob("*.dcm"))
    assert not lake.table(prepared.settings, "lineage").exists()


def test_optout_purge_removes_a_patient_everywhere(prepared: Prepared) -> None:
    settings = prepared.settings
    run_export(settings, prepared.request_id, user="olga")
    lineage = lake.table(settings, "lineage").read().to_pylist()
    patient = lineage[0]["source_patient_id"]
    theirs = {r["sop_instance_uid"] for r in lineage if r["source_patient_id"] == patient}
    with pytest.raises(Refused):
        purge_patient(settings, patient, user="olga")
    result = purge_patient(settings, patient, user="root")
    assert result.instances == len(theirs)
    instances = read_table(prepared.root, PROJECT, "instances")
    assert not theirs & set(instances["SOPInstanceUID"].to_list())
    attributes = read_table(prepared.root, PROJECT, "attributes")
    assert not theirs & set(attributes["SOPInstanceUID"].unique().to_list())
    assert len(objects(prepared.root, PROJECT)) == instances.height
    # Vacuumed: no data file of the table holds the purged rows any more.
    for parquet in (prepared.root / "research" / PROJECT / "tables" / "instances").glob("*.parquet"):
        assert not theirs & set(pl.read_parquet(parquet)["SOPInstanceUID"].to_list())
    assert patient in governance.opted_out_patient_ids(settings)


def test_revoke_with_purge_removes_the_requests_outputs(prepared: Prepared) -> None:
    settings = prepared.settings
    run_export(settings, prepared.request_id, user="olga")
    governance.revoke(settings, prepared.request_id, user="root", reason="consent issue")
    result = purge_request(settings, prepared.request_id, user="root")
    assert result.instances > 0
    assert read_table(prepared.root, PROJECT, "instances").height == 0
    assert read_table(prepared.root, PROJECT, "studies").height == 0
    assert objects(prepared.root, PROJECT) == {}


def test_bad_archive_objects_are_quarantined_with_a_reason(prepared_template: Prepared, tmp_path: Path) -> None:
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    prepared = prepared_template.copy(tmp_path / "lh")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.SeriesInstanceUID  # de-identifiable, but has no place in the research layout
    buffer = io.BytesIO()
    ds.save_as(buffer)
    (prepared.root / "archive" / "odd").mkdir()
    (prepared.root / "archive" / "odd" / "no-series.dcm").write_bytes(buffer.getvalue())
    (prepared.root / "archive" / "odd" / "notes.txt").write_bytes(b"not DICOM")
    request_id = prepare(prepared.config, project="odd-objects")
    state = run_export(prepared.settings, request_id, user="olga").state
    assert state.status == "succeeded"
    assert state.quarantined.get("missing_uid") == 1
    assert state.exported + sum(state.quarantined.values()) == state.planned_objects
    reasons = {q["source_key"]: q["reason"] for q in lake.table(prepared.settings, "quarantine").read().to_pylist()}
    assert reasons["odd/no-series.dcm"] == "missing_uid"
    assert "odd/notes.txt" not in reasons  # never cataloged as DICOM, so never in a manifest
