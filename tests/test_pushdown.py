"""Queries push filters down: over a research zone with more than 100,000 attribute rows, a
filtered DuckDB query over the table's Arrow dataset (``DeltaTable.to_pyarrow_dataset()``, as the
notebooks and the demo's example use it) reads far fewer bytes than the table holds, counted by
a filesystem that sees every byte the scan reads."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.fs as pa_fs
import pytest

from lakehouse import lake
from lakehouse.config import Settings, load_settings

PROJECT = "lung-ai"
COMMITS = 10  # one export's worth of instances each: ten data files
INSTANCES_PER_COMMIT = 5
ROWS_PER_INSTANCE = 2_100  # 105,000 attribute rows in all


class CountingHandler(pa_fs.FileSystemHandler):
    """A read-only local filesystem that counts the bytes read through it."""

    def __init__(self) -> None:
        self.local = pa_fs.LocalFileSystem()
        self.bytes_read = 0
        self._lock = threading.Lock()

    def count(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def get_type_name(self) -> str:
        return "counting"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other: Any) -> bool:
        return other is self

    def get_file_info(self, paths: list[str]) -> list[pa_fs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pa_fs.FileSelector) -> list[pa_fs.FileInfo]:
        return self.local.get_file_info(selector)

    def open_input_file(self, path: str) -> pa.PythonFile:
        return pa.PythonFile(_CountingReader(open(path, "rb"), self), mode="r")  # Arrow closes it

    def open_input_stream(self, path: str) -> pa.PythonFile:
        return self.open_input_file(path)

    def _read_only(self, *args: Any) -> Any:
        raise NotImplementedError("read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = _read_only
    move = copy_file = open_output_stream = open_append_stream = _read_only


class _CountingReader:
    def __init__(self, file: Any, handler: CountingHandler) -> None:
        self.file = file
        self.handler = handler
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.file.read(size)
        self.handler.count(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.file.seek(offset, whence))

    def tell(self) -> int:
        return int(self.file.tell())

    def close(self) -> None:
        self.file.close()
        self.closed = True


def attribute_rows(commit: int) -> pa.Table:
    """Attribute rows of a few instances, as an export writes them (one instance after another)."""
    rows = []
    for instance in range(INSTANCES_PER_COMMIT):
        uid = f"2.25.{commit:04d}{instance:04d}"
        for i in range(ROWS_PER_INSTANCE):
            rows.append({
                "SOPInstanceUID": uid, "path": f"{0x00100000 + i:08X}", "tag": f"{0x00100000 + i:08X}",
                "keyword": "ConvolutionKernel" if i == 7 else f"Keyword{i % 97}", "vr": "LO", "depth": 0,
                "value_text": f"value {commit}-{instance}-{i}", "value_number": None, "value_count": 1,
                "export_run_id": f"run-{commit}", "request_id": "req-1", "project": PROJECT,
                "deid_profile": "DICOM PS3.15 Basic Profile", "deid_options": ["clean-descriptors"],
            })
    return lake.table_spec("attributes").to_arrow(rows)


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from lakehouse.config import init_root

    settings = load_settings(init_root(tmp_path_factory.mktemp("pushdown") / "lh"), env={})
    table = lake.table(settings, "attributes", project=PROJECT)
    for commit in range(COMMITS):
        table.commit_once(attribute_rows(commit), app_id="bulk", version=commit)
    return settings


def counted_dataset(settings: Settings) -> tuple[Any, CountingHandler]:
    """``lake.scan`` of the attributes table through a counting filesystem."""
    uri = lake.table(settings, "attributes", project=PROJECT).uri
    handler = CountingHandler()
    filesystem = pa_fs.SubTreeFileSystem(str(Path(uri)), pa_fs.PyFileSystem(handler))
    return lake.scan(uri, filesystem=filesystem), handler


def bytes_read_by(settings: Settings, sql: str) -> tuple[list[tuple[Any, ...]], int]:
    """The query's rows and the bytes its scan read (opening the dataset, which reads each
    file's footer once to learn how it stores text, is not counted)."""
    dataset, handler = counted_dataset(settings)
    con = duckdb.connect()
    con.register("attributes", dataset)
    handler.bytes_read = 0
    rows = con.sql(sql).fetchall()
    con.close()
    del con, dataset
    gc.collect()  # Arrow buffers that wrap Python bytes go while the interpreter is whole
    return rows, handler.bytes_read


def test_a_filtered_duckdb_query_reads_a_fraction_of_the_table(research: Settings) -> None:
    figures = lake.table(research, "attributes", project=PROJECT).snapshot().figures()
    assert figures.rows >= 100_000 and figures.files == COMMITS

    everything, full_scan = bytes_read_by(research, "SELECT count(*), count(value_text) FROM attributes")
    assert everything == [(figures.rows, figures.rows)]

    uid = "2.25.00030002"
    found, filtered = bytes_read_by(
        research, f"SELECT path, value_text FROM attributes WHERE SOPInstanceUID = '{uid}' ORDER BY path"
    )
    assert len(found) == ROWS_PER_INSTANCE and found[7][1] == "value 3-2-7"
    # The filter reaches the Parquet scan: the other files' row groups are skipped by their
    # statistics (footers only), and of the one that matches only the columns asked for.
    assert filtered < figures.bytes / 4, (filtered, figures.bytes)
    assert filtered < full_scan / 4, (filtered, full_scan)


def test_the_plans_show_the_pushed_filter(research: Settings) -> None:
    con = duckdb.connect()
    con.register("attributes", lake.scan(lake.table(research, "attributes", project=PROJECT).uri))
    [(_, plan)] = con.sql("EXPLAIN SELECT value_text FROM attributes WHERE keyword = 'ConvolutionKernel'").fetchall()
    assert "ARROW_SCAN" in plan and """Filters:"keyword"='ConvolutionKernel'""" in plan.replace(" ", "")

    uri = lake.table(research, "attributes", project=PROJECT).uri
    lazy = pl.scan_delta(uri).filter(pl.col("SOPInstanceUID") == "2.25.00030002").select("value_text")
    polars_plan = lazy.explain()
    assert "SELECTION" in polars_plan and "2.25.00030002" in polars_plan
    assert lazy.collect().height == ROWS_PER_INSTANCE


def test_filters_bind_to_files_a_merge_or_delete_rewrote(tmp_path: Path) -> None:
    """Merges and deletes (delta-rs) store text as string_view, appends as string: over a table
    holding both, ``lake.scan`` reads text as string_view so a pushed filter binds to every file
    (a plain ``to_pyarrow_dataset()`` fails there), and over an append-only one keeps string."""
    from lakehouse.config import init_root

    settings = load_settings(init_root(tmp_path / "lh"), env={})
    attributes = lake.table(settings, "attributes", project=PROJECT)
    for commit in range(2):
        attributes.commit_once(attribute_rows(commit).slice(0, 3 * ROWS_PER_INSTANCE), app_id="bulk", version=commit)
    assert lake.scan(attributes.uri).schema.field("SOPInstanceUID").type == pa.string()
    attributes.delete_where(lake.in_list("SOPInstanceUID", ["2.25.00010001"]))  # rewrites commit 1's file

    con = duckdb.connect()
    con.register("attributes", lake.scan(attributes.uri))
    counts = con.sql(
        "SELECT SOPInstanceUID, count(*) FROM attributes WHERE SOPInstanceUID IN ('2.25.00010000', '2.25.00010001', "
        "'2.25.00000002') GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert counts == [("2.25.00000002", ROWS_PER_INSTANCE), ("2.25.00010000", ROWS_PER_INSTANCE)]
    con.register("naive", attributes.snapshot().delta.to_pyarrow_dataset())
    with pytest.raises(duckdb.Error, match="string_view"):
        con.sql("SELECT count(*) FROM naive WHERE SOPInstanceUID = '2.25.00010000'").fetchall()
