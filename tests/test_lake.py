"""The lake layer: idempotent appends by application transaction, schema evolution without rewrites."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.config import ZoneSettings, load_settings
from lakehouse.lake import Column, DeltaLocation, TableSpec, read_snapshot


def _spec(*extra: Column) -> TableSpec:
    return TableSpec(
        name="t", zone="research", version=1, description="test",
        columns=(Column("SOPInstanceUID", "string", False, "key"), Column("Rows", "int32", True, "rows"), *extra),
    )


def test_append_is_idempotent_per_transaction(local_root: Path) -> None:
    settings = load_settings(local_root / "lakehouse.toml", env={})
    table = DeltaLocation(settings.research, "p/tables/t", _spec())
    rows = _spec().to_arrow([{"SOPInstanceUID": "2.25.1", "Rows": 512}])
    assert table.append(rows, app_id="run-1", version=1) is True
    assert table.append(rows, app_id="run-1", version=1) is False  # a resumed run: already there
    assert table.append(rows, app_id="run-2", version=1) is True
    assert pl.read_delta(table.uri).height == 2
    assert table.transaction_version("run-1") == 1


def test_a_new_promoted_column_evolves_the_table_without_rewriting_it(local_root: Path) -> None:
    settings = load_settings(local_root / "lakehouse.toml", env={})
    old = DeltaLocation(settings.research, "p/tables/t", _spec())
    old.append(_spec().to_arrow([{"SOPInstanceUID": "2.25.1", "Rows": 512}]), app_id="a", version=1)
    files_before = set(old.open().file_uris())

    wider = _spec(Column("SliceThickness", "double", True, "new promoted column"))
    new = DeltaLocation(settings.research, "p/tables/t", wider)
    batch = wider.to_arrow([{"SOPInstanceUID": "2.25.2", "Rows": 256, "SliceThickness": 1.25}])
    new.append(batch, app_id="b", version=1, schema_mode="merge")

    table = new.open()
    assert files_before <= set(table.file_uris())  # old data files untouched, one file added
    df = pl.read_delta(new.uri).sort("SOPInstanceUID")
    assert df["SliceThickness"].to_list() == [None, 1.25]
    assert "SliceThickness" in table.schema().to_arrow().names
    assert replace(wider, version=2).arrow_schema.names == df.columns


def test_snapshots_read_from_folders_whose_names_need_escaping(tmp_path: Path) -> None:
    """Delta reports its location percent-encoded; the native reader must open the real folder
    (spaces, '#', '%', non-ASCII), partitioned or not, with filters."""
    zone_dir = tmp_path / "research zone #1 %é"
    zone = ZoneSettings(name="research", uri=str(zone_dir))
    path = zone_dir / "p 1" / "t é"
    write_deltalake(str(path), pa.table({"x": [1, 2, 3], "part": ["a b", "c/d", "é%"]}), partition_by=["part"])
    table = DeltaTable(str(path))
    assert "%20" in table.table_uri  # the location as Delta gives it is encoded
    rows = read_snapshot(table, zone).sort_by("x").to_pylist()
    assert rows == [{"x": 1, "part": "a b"}, {"x": 2, "part": "c/d"}, {"x": 3, "part": "é%"}]
    assert read_snapshot(table, zone, columns=["x"], filters=[("part", "=", "c/d")]).to_pylist() == [{"x": 2}]
