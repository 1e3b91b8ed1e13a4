"""The lake layer: every table's place, keys and write mode from its schema file; each write mode
through the table handle (idempotent appends, merge, insert-new, serialized appends, delete +
vacuum); column comments in the Delta log; the same S3 options for boto3, Delta and Arrow."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from lakehouse_testing import S3Server, write_s3_config

from lakehouse import lake
from lakehouse.config import Settings, ZoneSettings, load_settings
from lakehouse.errors import LakeError
from lakehouse.lake import Column, Table, TableSpec
from lakehouse.lake.schemas import render_reference
from lakehouse.storage import ObjectStore, open_zone
from lakehouse.storage.s3 import make_client

TABLES_DIR = Path(__file__).resolve().parents[1] / "schemas" / "tables"


def _spec(*extra: Column, **fields: Any) -> TableSpec:
    columns = (Column("SOPInstanceUID", "string", False, "the key"), Column("Rows", "int32", True, "rows"), *extra)
    given: dict[str, Any] = {"path": "{project}/tables/t", "keys": ("SOPInstanceUID",), **fields}
    return TableSpec(name="t", zone="research", version=1, description="test", columns=columns, **given)


_FILLERS: dict[str, Any] = {
    "string": "x", "bool": False, "int32": 0, "int64": 0, "double": 0.0,
    "date": date(2024, 1, 1), "timestamp": datetime(2024, 1, 1, tzinfo=UTC), "binary": b"",
}


def _rows(spec: TableSpec, *rows: dict[str, Any]) -> pa.Table:
    """Rows in ``spec`` with every required column not given filled with a plain value."""
    def filler(type_: str) -> Any:
        return [] if type_.startswith("list<") else _FILLERS[type_]

    required = {c.name: filler(c.type) for c in spec.columns if not c.nullable}
    return spec.to_arrow([{**required, **row} for row in rows])


@pytest.fixture
def settings(local_root: Path) -> Settings:
    return load_settings(local_root / "lakehouse.toml", env={})


def _comments(store: ObjectStore, table: Table, project: str | None = None) -> dict[str, str]:
    """Column comments as the newest metaData action of the Delta log records them (what Spark,
    Databricks and Unity Catalog read)."""
    log = sorted(i.key for i in store.list(f"{table.spec.location(project)}/_delta_log/") if i.key.endswith(".json"))
    for key in reversed(log):
        for line in store.get(key).decode().splitlines():
            action = json.loads(line)
            if "metaData" in action:
                fields = json.loads(action["metaData"]["schemaString"])["fields"]
                return {f["name"]: f["metadata"].get("comment", "") for f in fields}
    raise AssertionError("no metaData in the log")


# --- where tables live --------------------------------------------------------


def test_every_tables_path_keys_and_write_mode_come_from_its_schema_file(settings: Settings) -> None:
    for path in sorted(TABLES_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        project = "lung-ai" if "{project}" in data["path"] else None
        table = lake.table(settings, data["name"], project=project)
        zone = settings.zone(data["zone"])
        assert table.uri == zone.join(data["path"].format(project=project))
        assert table.zone == zone
        assert list(table.spec.keys) == data["keys"]
        assert (table.spec.write_mode, table.spec.deletable) == (data["write_mode"], data["deletable"])
    assert lake.table(settings, "instances", project="p").uri == settings.research.join("p/tables/instances")
    assert lake.table(settings, "audit").uri == settings.restricted.join("governance/audit")


def test_table_properties_from_the_schema_are_set_at_creation(settings: Settings) -> None:
    """The catalog keeps its history as long as an approval can last: an export recomputes the
    frozen manifest from the catalog version the approval recorded."""
    catalog = lake.table(settings, "catalog")
    catalog.create()
    configuration = catalog.snapshot().delta.metadata().configuration
    assert configuration["delta.logRetentionDuration"] == "interval 400 days"
    assert configuration["delta.deletedFileRetentionDuration"] == "interval 400 days"
    longest = settings.policy.max_validity_days
    assert int(configuration["delta.logRetentionDuration"].split()[1]) > longest


def test_the_schema_reference_in_the_readme_is_current() -> None:
    """``python -m lakehouse.lake.schemas`` regenerates it; a schema change without it fails here."""
    readme = (TABLES_DIR.parent / "README.md").read_text()
    assert readme.split("<!-- tables -->\n\n")[1] == render_reference()


def test_a_table_refuses_a_project_it_does_not_take_or_misses_one_it_needs(settings: Settings) -> None:
    with pytest.raises(LakeError, match="per project"):
        lake.table(settings, "instances")
    with pytest.raises(LakeError, match="per project"):
        lake.table(settings, "instances", project="../restricted")
    with pytest.raises(LakeError, match="shared by all projects"):
        lake.table(settings, "lineage", project="p")


def test_a_schema_file_that_contradicts_itself_is_refused() -> None:
    with pytest.raises(LakeError, match="needs keys"):
        _spec(write_mode="merge", keys=())
    with pytest.raises(LakeError, match="unknown columns"):
        _spec(keys=("NoSuchColumn",))
    with pytest.raises(LakeError, match="write_mode 'upsert'"):
        _spec(write_mode="upsert")
    with pytest.raises(LakeError, match="placeholder"):
        _spec(path="{request}/t")


def test_a_write_the_schema_does_not_allow_is_refused(settings: Settings) -> None:
    catalog = lake.table(settings, "catalog")
    with pytest.raises(LakeError, match="written by merge, not append"):
        catalog.append(catalog.spec.arrow_schema.empty_table())
    with pytest.raises(LakeError, match="does not allow deleting"):
        lake.table(settings, "audit").delete_where("seq = 0")
    assert not catalog.exists()


# --- write modes --------------------------------------------------------------


def test_append_is_idempotent_per_transaction(settings: Settings) -> None:
    table = Table(settings.research, _spec(), project="p")
    rows = _spec().to_arrow([{"SOPInstanceUID": "2.25.1", "Rows": 512}])
    assert table.append(rows, app_id="run-1", version=1) is True
    assert table.append(rows, app_id="run-1", version=1) is False  # a resumed run: already there
    assert table.commit_once([rows, rows.slice(0, 0)], app_id="run-2", version=1) is True  # streamed
    assert pl.read_delta(table.uri).height == 2
    assert table.transaction_version("run-1") == 1


def test_a_new_promoted_column_evolves_the_table_and_keeps_every_comment(settings: Settings) -> None:
    old = Table(settings.research, _spec(), project="p")
    old.append(_spec().to_arrow([{"SOPInstanceUID": "2.25.1", "Rows": 512}]), app_id="a", version=1)
    snapshot = old.open()
    assert snapshot is not None
    files_before = set(snapshot.file_uris())
    research = open_zone(settings, "research")
    assert _comments(research, old, "p") == {"SOPInstanceUID": "the key", "Rows": "rows"}

    wider = _spec(Column("SliceThickness", "double", True, "(0018,0050) Slice Thickness, mm."))
    new = Table(settings.research, wider, project="p")
    new.append(wider.to_arrow([{"SOPInstanceUID": "2.25.2", "Rows": 256, "SliceThickness": 1.25}]), app_id="b", version=1)
    old.append(_spec().to_arrow([{"SOPInstanceUID": "2.25.3", "Rows": 128}]))  # an older writer still appends

    snapshot = new.open()
    assert snapshot is not None
    assert files_before <= set(snapshot.file_uris())  # old data files untouched
    assert _comments(research, new, "p") == {
        "SOPInstanceUID": "the key", "Rows": "rows", "SliceThickness": "(0018,0050) Slice Thickness, mm."
    }
    df = pl.read_delta(new.uri).sort("SOPInstanceUID")
    assert df["SliceThickness"].to_list() == [None, 1.25, None]
    assert replace(wider, version=2).arrow_schema.names == df.columns
    files = [uri.removeprefix("file://") for uri in snapshot.file_uris()]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r}, union_by_name=true)").fetchall() == [(3,)]


def test_merge_upserts_on_the_keys_from_the_schema(settings: Settings) -> None:
    catalog = lake.table(settings, "catalog")
    row = {"key": "a.dcm", "etag": "e1"}
    catalog.merge(_rows(catalog.spec, row, {**row, "key": "b.dcm"}), metadata={"rows": 2})
    catalog.merge(_rows(catalog.spec, {**row, "etag": "e2"}))
    catalog.merge(_rows(catalog.spec))  # nothing to write: no commit
    rows = sorted(catalog.read(columns=["key", "etag"]).to_pylist(), key=lambda r: r["key"])
    assert rows == [{"key": "a.dcm", "etag": "e2"}, {"key": "b.dcm", "etag": "e1"}]
    assert catalog.version() == 2
    assert _comments(open_zone(settings, "restricted"), catalog)["key"].startswith("Object key in the archive")


def test_insert_new_keeps_the_first_row_per_key_once_per_transaction(settings: Settings) -> None:
    studies = lake.table(settings, "studies", project="p")

    def study(uid: str, description: str) -> pa.Table:
        return _rows(studies.spec, {"StudyInstanceUID": uid, "StudyDescription": description})

    assert studies.insert_new([study("2.25.1", "first"), study("2.25.1", "later")], app_id="run-1", version=1)
    run_2 = [study("2.25.1", "run 2"), study("2.25.2", "run 2")]
    assert studies.commit_once(run_2, app_id="run-2", version=1)  # the schema's mode: insert-new
    assert not studies.insert_new(study("2.25.3", "resumed run 2"), app_id="run-2", version=1)
    version = studies.version()
    studies.insert_new(study("2.25.1", "run 3"), app_id="run-3", version=1)  # nothing new: no commit
    assert studies.version() == version
    rows = studies.read(columns=["StudyInstanceUID", "StudyDescription"]).sort_by("StudyInstanceUID").to_pylist()
    assert rows == [
        {"StudyInstanceUID": "2.25.1", "StudyDescription": "first"},
        {"StudyInstanceUID": "2.25.2", "StudyDescription": "run 2"},
    ]


def test_serialized_appends_rebuild_after_losing_a_commit_race(settings: Settings) -> None:
    audit = lake.table(settings, "audit")
    seen: list[int | None] = []

    def event(seq: int) -> pa.Table:
        return _rows(audit.spec, {"seq": seq, "event_id": f"e{seq}"})

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, str]:
        last = snapshot.transaction_version("chain")
        seen.append(last)
        if len(seen) == 1:  # another writer commits after we read: our commit must fail and re-read
            audit.append_serialized("chain", lambda s: (event(0), 0, None))
        seq = 0 if last is None else last + 1
        return event(seq), seq, f"wrote {seq}"

    assert audit.append_serialized("chain", build) == "wrote 1"
    assert seen == [None, 0]
    assert sorted(audit.read(columns=["seq"]).column("seq").to_pylist()) == [0, 1]
    assert audit.transaction_version("chain") == 1


def test_serialized_appends_from_threads_are_totally_ordered(settings: Settings) -> None:
    audit = lake.table(settings, "audit")

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, None]:
        last = snapshot.transaction_version("chain")
        seq = 0 if last is None else last + 1
        return _rows(audit.spec, {"seq": seq, "event_id": f"e{seq}"}), seq, None

    audit.create()
    threads = [threading.Thread(target=audit.append_serialized, args=("chain", build)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(audit.read(columns=["seq"]).column("seq").to_pylist()) == [0, 1, 2, 3]


def test_delete_where_removes_rows_and_vacuums_their_files(settings: Settings) -> None:
    instances = lake.table(settings, "instances", project="p")
    rows = [{"SOPInstanceUID": f"2.25.{i}"} for i in range(3)]
    instances.append(_rows(instances.spec, *rows[:2]))
    instances.append(_rows(instances.spec, *rows[2:]))
    folder = settings.research.local_path / "p" / "tables" / "instances"
    assert len(list(folder.glob("*.parquet"))) == 2

    assert instances.delete_where(lake.in_list("SOPInstanceUID", {"2.25.0", "2.25.2", "it's"})) == 2
    assert instances.read(columns=["SOPInstanceUID"]).to_pylist() == [{"SOPInstanceUID": "2.25.1"}]
    assert len(list(folder.glob("*.parquet"))) == 1  # retention 0: the old files are gone from storage
    # delta-rs rewrote the file with string_view columns; filtered reads still compare text
    instances.append(_rows(instances.spec, {"SOPInstanceUID": "2.25.7"}))
    for filters in ([("SOPInstanceUID", "=", "2.25.1")], [("SOPInstanceUID", "in", ["2.25.1", "2.25.0"])]):
        assert instances.read(columns=["SOPInstanceUID"], filters=filters).to_pylist() == [{"SOPInstanceUID": "2.25.1"}]
    either = [[("SOPInstanceUID", "=", "2.25.7")], [("SOPInstanceUID", ">=", "2.25.1"), ("object_size", "<", 1)]]
    assert sorted(instances.read(filters=either).column("SOPInstanceUID").to_pylist()) == ["2.25.1", "2.25.7"]
    assert instances.delete_where(lake.in_list("SOPInstanceUID", [])) == 0
    assert lake.table(settings, "series", project="other").delete_where("TRUE") == 0  # no table yet


def test_reads_of_a_missing_table_are_empty_in_the_schema(settings: Settings) -> None:
    lineage = lake.table(settings, "lineage")
    assert not lineage.exists() and lineage.version() is None and lineage.transaction_version("x") is None
    assert lineage.read(columns=["project", "output_key"]).schema.names == ["project", "output_key"]
    assert lineage.read().num_rows == 0


def test_snapshots_read_from_folders_whose_names_need_escaping(tmp_path: Path) -> None:
    """Delta reports its location percent-encoded; the native reader must open the real folder
    (spaces, '#', '%', non-ASCII), partitioned or not, with filters."""
    zone = ZoneSettings(name="research", uri=str(tmp_path / "research zone #1 %é"))
    spec = TableSpec(
        name="t", zone="research", version=1, description="", path="{project}/t é", partition_by=("part",),
        columns=(Column("x", "int64", False, ""), Column("part", "string", False, "")),
    )
    table = Table(zone, spec, project="p 1")
    table.append(pa.table({"x": [1, 2, 3], "part": ["a b", "c/d", "é%"]}))
    snapshot = table.open()
    assert snapshot is not None and "%20" in snapshot.delta.table_uri  # the location as Delta gives it
    assert table.read().sort_by("x").to_pylist() == [{"x": 1, "part": "a b"}, {"x": 2, "part": "c/d"}, {"x": 3, "part": "é%"}]
    assert table.read(columns=["x"], filters=[("part", "=", "c/d")]).to_pylist() == [{"x": 2}]


def test_in_list_quotes_values() -> None:
    assert lake.in_list("k", ["b", "a'b", "b"]) == "k IN ('a''b', 'b')"
    assert lake.in_list("k", set()) == "FALSE"


# --- S3 -----------------------------------------------------------------------


def test_one_reading_of_a_zones_s3_settings_for_boto3_delta_and_arrow() -> None:
    local = ZoneSettings(name="research", uri="/tmp/x")
    assert lake.delta_storage_options(local) == {}
    zone = ZoneSettings(
        name="research", uri="s3://b/p", endpoint_url="http://127.0.0.1:9", access_key_id="k", secret_access_key="s"
    )
    options = lake.delta_storage_options(zone)
    assert options == {
        "conditional_put": "etag",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    client = make_client(zone, timeout=5.0)
    assert client.meta.endpoint_url == options["AWS_ENDPOINT_URL"]
    assert client.meta.region_name == options["AWS_REGION"]
    assert lake.arrow_filesystem(zone).region == "us-east-1"
    profiled = lake.delta_storage_options(replace(zone, access_key_id="", secret_access_key="", profile="research"))
    assert profiled["AWS_PROFILE"] == "research" and "AWS_ACCESS_KEY_ID" not in profiled


@pytest.mark.s3
def test_tables_on_s3_append_merge_delete_and_keep_their_comments(s3_server: S3Server, tmp_path: Path) -> None:
    buckets = {"research": s3_server.new_bucket("research"), "restricted": s3_server.new_bucket("restricted")}
    settings = load_settings(write_s3_config(tmp_path, s3_server, buckets), env={})
    instances = lake.table(settings, "instances", project="p")
    assert instances.uri == f"s3://{buckets['research']}/research/p/tables/instances"
    rows = _rows(instances.spec, *({"SOPInstanceUID": f"2.25.{i}"} for i in range(3)))
    assert instances.commit_once(rows, app_id="run-1", version=1)
    assert not instances.commit_once(rows, app_id="run-1", version=1)
    assert instances.delete_where(lake.in_list("SOPInstanceUID", ["2.25.0"])) == 1
    read = instances.read(columns=["SOPInstanceUID"], filters=[("SOPInstanceUID", "!=", "2.25.1")])  # native Arrow S3
    assert read.to_pylist() == [{"SOPInstanceUID": "2.25.2"}]
    assert pl.read_delta(instances.uri, storage_options=instances.storage_options).height == 2
    comments = _comments(open_zone(settings, "research"), instances, "p")
    assert comments["SOPInstanceUID"].startswith("(0008,0018) SOP Instance UID")

    catalog = lake.table(settings, "catalog")
    catalog.merge(_rows(catalog.spec, {"key": "a.dcm", "etag": "e1"}))
    catalog.merge(_rows(catalog.spec, {"key": "a.dcm", "etag": "e2"}))
    assert catalog.read(columns=["etag"]).to_pylist() == [{"etag": "e2"}]
    assert {"PUT", "GET"} <= s3_server.log.methods_for_bucket(buckets["restricted"])
