"""Sources the catalog read with warnings, and UIDs that are paths, through a real export.

Objects read with a warning (real big endian and deflated files from pydicom's test data, no
file meta, no SOP Instance UID) are counted in the preview, frozen in the manifest, and then
exported or quarantined with a reason: none disappears without a count. A UID kept by
retain-uids never becomes a path: such an object is quarantined as ``bad_uid``."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from export_testing import ROLES, prepare
from lakehouse_testing import S3Server, set_sections, write_s3_config
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from lakehouse import governance, lake
from lakehouse.catalog import sync_catalog
from lakehouse.config import init_root, load_settings
from lakehouse.export import run_export
from lakehouse.storage import open_zone

PutArchive = Callable[[str, bytes], None]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, PutArchive]:
    """A lakehouse root on local folders or on S3 buckets, and how to put an archive object."""
    if request.param == "local":
        config = init_root(tmp_path / "lh")
        archive = tmp_path / "lh" / "archive"

        def put(key: str, data: bytes) -> None:
            (archive / key).parent.mkdir(parents=True, exist_ok=True)
            (archive / key).write_bytes(data)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        buckets = {zone: server.new_bucket(zone[:4]) for zone in ("archive", "restricted", "research")}
        config = write_s3_config(tmp_path / "lh", server, buckets)
        client = server.client()

        def put(key: str, data: bytes) -> None:
            client.put_object(Bucket=buckets["archive"], Key=f"archive/{key}", Body=data)
    set_sections(config, roles=ROLES, export={"batch_size": 4, "workers": 1})
    return config, put


def _testdata(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def _deflated_mr() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["deflated"])
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_objects_read_with_warnings_are_counted_then_exported_or_quarantined(
    lake_root: tuple[Path, PutArchive],
) -> None:
    config, put = lake_root
    put("ok/ct.dcm", _testdata("CT_small.dcm"))
    put("warn/big-endian-mr.dcm", _testdata("MR_small_bigendian.dcm"))
    put("warn/deflated-ot.dcm", _testdata("image_dfl.dcm"))  # OT: a burned-in risk
    put("warn/deflated-mr.dcm", _deflated_mr())
    put("warn/no-file-meta-rtstruct.dcm", _testdata("rtstruct.dcm"))
    put("warn/no-sop-instance-uid.dcm", _testdata("no_meta_group_length.dcm"))
    settings = load_settings(config, env={})
    sync_catalog(settings)

    preview = governance.preview(settings, {})
    assert preview.instances == 6
    assert preview.read_with_warnings == {"big_endian": 1, "deflated": 2, "no_file_meta": 1, "no_sop_instance_uid": 1}
    assert preview.unexportable == 1
    assert "read with warnings: big_endian 1, deflated 2" in preview.summary_line()

    request_id = prepare(config, project="odd-syntaxes")
    assert len(governance.load_manifest(settings, request_id)) == 6  # every readable object
    state = run_export(settings, request_id, user="olga").state
    assert state.status == "succeeded"
    assert state.exported + sum(state.quarantined.values()) == state.planned_objects == 6
    quarantined = {q["source_key"]: q["reason"] for q in lake.table(settings, "quarantine").read().to_pylist()}
    assert quarantined == {"warn/deflated-ot.dcm": "burned_in_risk", "warn/no-sop-instance-uid.dcm": "missing_sop_uids"}
    lineage = lake.table(settings, "lineage").read().to_pylist()
    assert {row["source_key"] for row in lineage} == {
        "ok/ct.dcm", "warn/big-endian-mr.dcm", "warn/deflated-mr.dcm", "warn/no-file-meta-rtstruct.dcm"
    }
    research = open_zone(settings, "research")
    syntaxes = {}
    for row in lineage:  # published, readable, de-identified (new UIDs), in the source's syntax
        published = pydicom.dcmread(io.BytesIO(research.get(row["output_key"])))
        assert published.SOPInstanceUID == row["sop_instance_uid"] != row["source_sop_instance_uid"]
        syntaxes[row["source_key"]] = str(published.file_meta.TransferSyntaxUID)
    assert syntaxes["warn/big-endian-mr.dcm"] == "1.2.840.10008.1.2.2"
    assert syntaxes["warn/deflated-mr.dcm"] == "1.2.840.10008.1.2.1.99"


def _with_uids(study: str, series: str, sop: str) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_retained_uids_that_are_paths_never_become_object_keys(
    lake_root: tuple[Path, PutArchive], tmp_path: Path
) -> None:
    # Only unsafe UIDs here: the research gate refuses any retained (non-2.25) UID anyway.
    config, put = lake_root
    put("src/traversal.dcm", _with_uids("1.2.3", "1.2.3.4", "../../../../escaped"))
    put("src/absolute.dcm", _with_uids("1.2.3", str(tmp_path / "abs"), "1.2.3.4.6"))
    request_id = prepare(config, project="kept-uids", options=["retain-uids"])
    settings = load_settings(config, env={})
    state = run_export(settings, request_id, user="olga").state
    assert state.status == "succeeded" and state.exported == 0 and state.quarantined == {"bad_uid": 2}
    quarantined = {q["source_key"]: q["reason"] for q in lake.table(settings, "quarantine").read().to_pylist()}
    assert quarantined == {"src/traversal.dcm": "bad_uid", "src/absolute.dcm": "bad_uid"}
    outside = {p for p in tmp_path.rglob("*") if "lh" not in p.relative_to(tmp_path).parts}
    assert outside == set() and not (tmp_path / "abs").exists()
    research = open_zone(settings, "research")
    assert not [info.key for info in research.list() if info.key.endswith(".dcm")]  # neither published nor staged
