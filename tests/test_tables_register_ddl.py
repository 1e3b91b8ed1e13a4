"""`lakehouse tables ddl`: statements per engine. The ones that run offline are run: DuckDB and
Spark views over the Parquet files of each table's current snapshot (the documented fallback
when DuckDB's delta extension or delta-spark's jars cannot be downloaded), and DuckDB's
``delta_scan`` views where the extension loads."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from lakehouse_testing import lakehouse_cli, reason_lines, set_sections
from test_tables_register import PROJECT, RESEARCH, ROLES, sample_rows

from lakehouse import lake
from lakehouse.config import Settings, load_settings
from lakehouse.lake.registration import ddl


@pytest.fixture
def project(local_root: Path) -> Settings:
    """PROJECT's research tables, one with rows deleted whose files stay on disk (retention)."""
    config = local_root / "lakehouse.toml"
    set_sections(config, roles=ROLES, export={"vacuum_retention_hours": 168})
    settings = load_settings(config, env={})
    for name in RESEARCH:
        table = lake.table(settings, name, project=PROJECT)
        for version, rows in ((1, 4), (2, 3)):
            table.commit_once(sample_rows(name, rows), app_id="fill", version=version)
    assert lake.table(settings, "attributes", project=PROJECT).delete_where("path = 'v0'") == 2
    return settings


def delta_rows(settings: Settings) -> dict[str, int]:
    return {name: lake.table(settings, name, project=PROJECT).snapshot().read().num_rows for name in RESEARCH}


def test_duckdb_parquet_views_read_the_current_snapshot_with_descriptions(project: Settings) -> None:
    con = duckdb.connect()
    for statement in ddl(project, PROJECT, "duckdb", parquet=True):
        con.execute(statement)
    counts = {name: con.sql(f"SELECT count(*) FROM lakehouse_lung_ai.{name}").fetchall()[0][0] for name in RESEARCH}
    assert counts == delta_rows(project) and counts["attributes"] == 5
    on_disk = list((project.research.local_path / PROJECT / "tables" / "attributes").glob("*.parquet"))
    assert con.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in on_disk]})").fetchall()[0][0] > 5
    comments = dict(con.sql(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'lakehouse_lung_ai' AND table_name = 'instances'"
    ).fetchall())
    assert comments == {c.name: c.description or None for c in lake.table_spec("instances").columns}
    [(described,)] = con.sql("SELECT comment FROM duckdb_views() WHERE view_name = 'studies'").fetchall()
    assert described == lake.table_spec("studies").description


def test_duckdb_delta_scan_views_where_the_extension_loads(project: Settings) -> None:
    con = duckdb.connect()
    statements = ddl(project, PROJECT, "duckdb")
    assert statements[:2] == ["INSTALL delta", "LOAD delta"]
    try:
        con.execute("LOAD delta")
    except duckdb.Error:
        try:
            con.execute("INSTALL delta")
        except duckdb.Error:
            pytest.skip("DuckDB's delta extension is a download, unavailable offline (the --parquet views run instead)")
    for statement in statements:
        con.execute(statement)
    counts = {name: con.sql(f"SELECT count(*) FROM lakehouse_lung_ai.{name}").fetchall()[0][0] for name in RESEARCH}
    assert counts == delta_rows(project)


@pytest.mark.spark
@pytest.mark.slow
def test_spark_parquet_views_read_the_current_snapshot_with_comments(project: Settings, spark) -> None:  # type: ignore[no-untyped-def]
    for statement in ddl(project, PROJECT, "spark", parquet=True):
        spark.sql(statement)
    counts = {name: spark.sql(f"SELECT count(*) AS n FROM {name}").first()["n"] for name in RESEARCH}
    assert counts == delta_rows(project)
    described = {row["col_name"]: row["comment"] for row in spark.sql("DESCRIBE instances").collect()}
    for column in lake.table_spec("instances").columns:
        assert described[column.name] == column.description
    # A table with no data file yet is an empty view of the right columns.
    empty = lake.table(project, "annotations", project=PROJECT)
    empty.snapshot()
    views = {s.split(" (", 1)[0].rsplit(" ", 1)[1]: s for s in ddl(project, PROJECT, "spark", parquet=True)}
    spark.sql(views["annotations"])
    assert spark.sql("SELECT * FROM annotations").columns == lake.table_spec("annotations").column_names
    assert spark.sql("SELECT count(*) AS n FROM annotations").first()["n"] == 0


def test_cli_prints_each_dialects_statements(project: Settings) -> None:
    config = project.config_path
    assert config is not None
    uri = lake.table(project, "studies", project=PROJECT).uri
    out = {}
    for dialect in ("spark", "trino", "athena", "duckdb"):
        done = lakehouse_cli(config, "tables", "ddl", "--project", PROJECT, "--dialect", dialect, "--json")
        assert done.returncode == 0, reason_lines(done.stderr)
        out[dialect] = json.loads(done.stdout)["statements"]
    assert out["spark"][0] == "CREATE SCHEMA IF NOT EXISTS lakehouse_lung_ai"
    assert f"CREATE TABLE IF NOT EXISTS lakehouse_lung_ai.studies USING DELTA LOCATION '{uri}'" in "\n".join(out["spark"])
    assert "CALL delta.system.register_table(schema_name => 'lakehouse_lung_ai', table_name => 'studies', " \
           f"table_location => '{uri}')" in out["trino"]
    assert f"CREATE EXTERNAL TABLE IF NOT EXISTS lakehouse_lung_ai.studies LOCATION '{uri}' " \
           "TBLPROPERTIES ('table_type' = 'DELTA')" in out["athena"]
    assert f"CREATE OR REPLACE VIEW lakehouse_lung_ai.studies AS SELECT * FROM delta_scan('{uri}')" in out["duckdb"]
    for dialect, statements in out.items():
        assert not any("catalog" in s or "governance" in s for s in statements), dialect  # no restricted table
    text = lakehouse_cli(config, "tables", "ddl", "--project", PROJECT, "--dialect", "athena", "--database", "Lung AI")
    assert text.stdout.splitlines()[0] == "CREATE DATABASE IF NOT EXISTS lung_ai;"
    bad = lakehouse_cli(config, "tables", "ddl", "--project", PROJECT, "--dialect", "trino", "--parquet")
    assert bad.returncode != 0 and "--parquet views are for spark and duckdb" in bad.stderr
