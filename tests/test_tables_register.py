"""`lakehouse tables register`: a project's tables in the Glue Data Catalog of the moto server
(over HTTP, as a real process), typed and described from the schemas; re-running updates, never
duplicates; restricted tables are never registered; every registration is audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from lakehouse_testing import S3Server, lakehouse_cli, reason_lines, set_sections, write_s3_config

from lakehouse import governance, lake
from lakehouse.config import Settings, load_settings
from lakehouse.errors import Refused
from lakehouse.lake.registration import database_name, register_glue, require_registrable

PROJECT = "lung-ai"
RESEARCH = ("studies", "series", "instances", "attributes")
ROLES = {"operators": ["olga"], "admins": ["root"], "requesters": ["alice"]}


def sample_value(kind: str, i: int) -> Any:
    """A value of a schema type (row ``i``): stand-ins, the registration never reads rows."""
    if kind.startswith("list<"):
        return [sample_value(kind[5:-1], i)]
    return {
        "string": f"v{i}", "bool": i % 2 == 0, "int32": i, "int64": i, "double": i / 2,
        "date": date(2020, 1, 1), "timestamp": datetime(2020, 1, 1, tzinfo=UTC), "binary": b"x",
    }[kind]


def sample_rows(name: str, count: int) -> pa.Table:
    spec = lake.table_spec(name)
    return spec.to_arrow([{c.name: sample_value(c.type, i) for c in spec.columns} for i in range(count)])


def fill_project(settings: Settings, count: int = 3) -> None:
    """The research tables of PROJECT with a few rows, and the restricted catalog table."""
    for name in RESEARCH:
        lake.table(settings, name, project=PROJECT).commit_once(sample_rows(name, count), app_id="fill", version=1)
    lake.table(settings, "catalog").snapshot()


@pytest.fixture
def s3_root(tmp_path: Path, s3_server: S3Server) -> Path:
    bucket = s3_server.new_bucket("research")
    config = write_s3_config(
        tmp_path / "s3", s3_server, {"research": bucket},
        extra=f'\n[tables]\nglue_endpoint_url = "{s3_server.endpoint_url}"\n',
    )
    set_sections(config, roles=ROLES)
    fill_project(load_settings(config, env={}))
    return config


def glue(server: S3Server) -> Any:
    import boto3

    return boto3.client("glue", endpoint_url=server.endpoint_url, region_name="us-east-1")


def test_register_creates_then_updates_delta_tables_with_described_columns(s3_root: Path, s3_server: S3Server) -> None:
    first = lakehouse_cli(s3_root, "tables", "register", "--project", PROJECT, "--catalog", "glue",
                          "--user", "olga", "--json")
    assert first.returncode == 0, reason_lines(first.stderr)
    registered = json.loads(first.stdout)["registered"]
    assert sorted(r["table"] for r in registered) == sorted(RESEARCH)
    assert {r["action"] for r in registered} == {"created"}

    database = database_name(load_settings(s3_root, env={}), PROJECT)
    assert database == "lakehouse_lung_ai"
    tables = {t["Name"]: t for t in glue(s3_server).get_tables(DatabaseName=database)["TableList"]}
    assert sorted(tables) == sorted(RESEARCH)
    settings = load_settings(s3_root, env={})
    for name, entry in tables.items():
        spec = lake.table_spec(name)
        assert entry["Parameters"]["table_type"] == "DELTA"
        assert entry["StorageDescriptor"]["Location"] == lake.table(settings, name, project=PROJECT).uri
        assert entry["StorageDescriptor"]["Location"].startswith("s3://")
        assert entry["Description"] == spec.description
        columns = [(c["Name"], c["Type"], c.get("Comment")) for c in entry["StorageDescriptor"]["Columns"]]
        assert [name for name, _, _ in columns] == spec.column_names
        assert [comment for _, _, comment in columns] == [c.description[:255] for c in spec.columns]
    types = {c["Name"]: c["Type"] for c in tables["instances"]["StorageDescriptor"]["Columns"]}
    hive = {"string": "string", "int32": "int", "int64": "bigint", "double": "double", "list<double>": "array<double>",
            "date": "date", "timestamp": "timestamp", "bool": "boolean", "list<string>": "array<string>"}
    assert types == {c.name: hive.get(c.type, c.type) for c in lake.table_spec("instances").columns}
    assert types["PixelSpacing"] == "array<double>"

    # More rows land, then a second registration: the same entries, updated in place.
    lake.table(settings, "studies", project=PROJECT).commit_once(sample_rows("studies", 5), app_id="fill", version=2)
    again = lakehouse_cli(s3_root, "tables", "register", "--project", PROJECT, "--user", "olga", "--json")
    assert again.returncode == 0, reason_lines(again.stderr)
    assert {r["action"] for r in json.loads(again.stdout)["registered"]} == {"updated"}
    after = glue(s3_server).get_tables(DatabaseName=database)["TableList"]
    assert sorted(t["Name"] for t in after) == sorted(RESEARCH)
    studies = next(t for t in after if t["Name"] == "studies")
    assert studies["Parameters"]["lakehouse.delta_version"] == str(lake.table(settings, "studies", project=PROJECT).version())
    assert len(glue(s3_server).get_databases()["DatabaseList"]) >= 1

    audited = [e for e in governance.list_audit(settings) if e.action == "tables.register"]
    assert len(audited) == 2 * len(RESEARCH)
    assert {e.user for e in audited} == {"olga"}
    assert sorted(e.details["table"] for e in audited[: len(RESEARCH)]) == sorted(RESEARCH)


def test_restricted_tables_are_never_registered(s3_root: Path, s3_server: S3Server) -> None:
    settings = load_settings(s3_root, env={})
    register_glue(settings, PROJECT, database="elsewhere")
    names = {t["Name"] for t in glue(s3_server).get_tables(DatabaseName="elsewhere")["TableList"]}
    restricted = {spec.name for spec in lake.all_table_specs() if spec.zone == "restricted"}
    assert names == set(RESEARCH) and not names & restricted
    for name in restricted:
        with pytest.raises(Refused, match="restricted zone"):
            require_registrable(lake.table_spec(name))


def test_registration_is_refused_to_others_and_for_a_local_research_zone(s3_root: Path, local_root: Path) -> None:
    refused = lakehouse_cli(s3_root, "tables", "register", "--project", PROJECT, "--user", "alice")
    assert refused.returncode != 0
    assert reason_lines(refused.stderr) == ["lakehouse: user 'alice' is not in [roles] operators or admins"]

    config = local_root / "lakehouse.toml"
    set_sections(config, roles=ROLES)
    fill_project(load_settings(config, env={}))
    local = lakehouse_cli(config, "tables", "register", "--project", PROJECT, "--user", "olga")
    assert local.returncode != 0
    assert "Glue registers tables on S3 only" in local.stderr
