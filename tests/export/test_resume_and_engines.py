"""Exactly once: kill -9 at several points and resume; Spark and local give identical results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from export_testing import PROJECT, TABLES, comparable, lakehouse, objects, read_table
from lakehouse_testing import Prepared

from lakehouse.export import run_export
from lakehouse.export.plan import split_batches


def _cli(prepared: Prepared, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return lakehouse(*args, "--config", str(prepared.config), "--user", "olga", env=env)


def _snapshot(prepared: Prepared) -> tuple[dict[str, object], dict[str, bytes]]:
    tables = {t: comparable(read_table(prepared.root, PROJECT, t)) for t in TABLES}
    return tables, objects(prepared.root, PROJECT)


@pytest.fixture(scope="module")
def baseline(prepared_template: Prepared, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    prepared = prepared_template.copy(tmp_path_factory.mktemp("baseline") / "lh")
    state = run_export(prepared.settings, prepared.request_id, user="olga").state
    assert state.status == "succeeded" and state.batches >= 3
    return _snapshot(prepared)


@pytest.mark.parametrize(
    "kill_at", ["after_batch:1", "before_publish", "after_commit:lineage", "after_publish", "after_commit:series"]
)
def test_kill_and_resume_matches_an_uninterrupted_run(
    kill_at: str, prepared: Prepared, baseline: tuple[dict[str, object], dict[str, bytes]]
) -> None:
    killed = _cli(prepared, "export", "run", prepared.request_id, "--workers", "1", "--json",
                  env={"LAKEHOUSE_FAULT_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _cli(prepared, "export", "run", prepared.request_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["resumed"] is True and result["status"] == "succeeded"
    tables, published = _snapshot(prepared)
    expected_tables, expected_objects = baseline
    for name in TABLES:
        assert tables[name].equals(expected_tables[name]), f"{name} differs after kill at {kill_at}"
    assert published == expected_objects
    # The run's staging area is gone once it succeeded.
    assert not (prepared.root / "research" / PROJECT / "_staging" / result["run_id"]).exists()


@pytest.mark.spark
def test_spark_engine_matches_local(
    prepared: Prepared, baseline: tuple[dict[str, object], dict[str, bytes]], spark  # type: ignore[no-untyped-def]
) -> None:
    state = run_export(prepared.settings, prepared.request_id, user="olga", engine="spark", spark=spark).state
    assert state.status == "succeeded"
    tables, published = _snapshot(prepared)
    expected_tables, expected_objects = baseline
    for name in TABLES:
        assert tables[name].equals(expected_tables[name]), f"{name} differs between engines"
    assert published == expected_objects
    # And Spark reads the research tables as they are (Parquet files of the current version).
    from deltalake import DeltaTable

    files = DeltaTable(str(prepared.root / "research" / PROJECT / "tables" / "instances")).file_uris()
    assert spark.read.parquet(*files).count() == state.exported


@pytest.mark.spark
def test_spark_submit_entry_point(prepared: Prepared) -> None:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    jobs = Path(__file__).resolve().parents[2] / "jobs" / "export_spark.py"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false", str(jobs),
         prepared.request_id, "--config", str(prepared.config), "--user", "olga"],
        capture_output=True, text=True, check=False, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # spark-submit passes the driver's stderr (the asserted-mode warning line) on to stdout
    warning, _, printed = done.stdout.partition("\n{")
    assert "lakehouse: warning: identity mode is 'asserted'" in warning
    result = json.loads("{" + printed)
    assert result["status"] == "succeeded" and result["engine"] == "spark" and result["exported"] > 0
    assert read_table(prepared.root, PROJECT, "instances").height == result["exported"]


@pytest.mark.parametrize(
    ("objects", "batch_size", "workers", "expected_sizes"),
    [
        (2001, 250, 2, [200, 201]),  # 9 batches of ≤250 would leave a worker idle for the last one
        (24, 500, 2, [24]),
        (501, 250, 2, [125, 126]),
        (10, 3, 4, [2, 3]),
        (3, 1, 8, [1]),  # never more batches than objects
    ],
)
def test_batches_are_even_and_keep_every_worker_busy(
    objects: int, batch_size: int, workers: int, expected_sizes: list[int]
) -> None:
    entries = [{"key": f"k{i:05d}"} for i in range(objects)]
    batches = split_batches(entries, batch_size, workers)
    assert [e for batch in batches for e in batch] == entries  # order kept, nothing lost or repeated
    assert sorted({len(batch) for batch in batches}) == expected_sizes
    assert all(len(batch) <= batch_size for batch in batches)
    assert len(batches) == 1 or len(batches) % workers == 0 or len(batches) == objects
