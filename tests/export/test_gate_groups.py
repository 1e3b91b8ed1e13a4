"""The gate validates batches together where they pass, and batch by batch where they do not.

A run killed (kill -9) after its last batch leaves every batch staged; with the verdicts removed,
the resumed run gates them all at once. A group that passes gives each batch a verdict naming the
group; a group with one tampered batch fails, is validated again batch by batch, and the report
names that batch alone."""

from __future__ import annotations

import json
import signal

import pyarrow as pa
import pytest
from export_testing import lakehouse
from lakehouse_testing import Prepared

from lakehouse.export import BatchSummary, GateFailed, export_status, run_export
from lakehouse.export.worker import read_parquet_bytes, to_parquet_bytes
from lakehouse.storage.local import LocalStore


def _staged_without_verdicts(prepared: Prepared) -> tuple[LocalStore, str, int]:
    """A run killed after its last batch (one worker), its gate verdicts removed."""
    plan_batches = 3
    config = ["--config", str(prepared.config), "--user", "olga"]
    killed = lakehouse("export", "run", prepared.request_id, "--workers", "1", *config,
                       env={"LAKEHOUSE_FAULT_KILL_AT": f"after_batch:{plan_batches - 1}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restricted = LocalStore(prepared.root / "restricted")
    listed = lakehouse("export", "list", "--request", prepared.request_id, "--json", "--config", str(prepared.config))
    (run,) = json.loads(listed.stdout)["runs"]
    assert run["batches"] == plan_batches
    layout = export_status(prepared.settings, run["run_id"]).layout
    for batch in range(plan_batches):
        assert restricted.exists(layout.marker(batch))
        restricted.delete(layout.verdict(batch))
    return restricted, run["run_id"], plan_batches


@pytest.fixture
def three_batches(prepared: Prepared) -> Prepared:
    from lakehouse_testing import set_sections

    set_sections(prepared.config, export={"batch_size": 6, "workers": 1})
    return prepared


def test_batches_that_pass_are_validated_together(three_batches: Prepared) -> None:
    restricted, run_id, batches = _staged_without_verdicts(three_batches)
    state = run_export(three_batches.settings, three_batches.request_id, user="olga").state
    assert state.status == "succeeded" and state.run_id == run_id
    names = [f"b-{i:05d}" for i in range(batches)]
    report = json.loads(restricted.get(state.gate_report or ""))  # the verdicts, kept after the run
    assert report["passed"] and [b["batch"] for b in report["batches"]] == names
    for verdict in report["batches"]:
        assert verdict["passed"] and verdict["validated_together"] == names
        # Studies and series split between batches count once: keys stay unique in the group.
        assert verdict["rows"]["instances"] == state.exported


def test_a_failing_group_is_validated_again_batch_by_batch(three_batches: Prepared) -> None:
    restricted, run_id, _batches = _staged_without_verdicts(three_batches)
    layout = export_status(three_batches.settings, run_id).layout
    # An insider (or a bug) puts a source identifier into batch 1's staged header JSON.
    summary = BatchSummary.from_json(restricted.get(layout.marker(1)))
    identifier = next(v for v in summary.forbidden if len(v) > 3)
    key = layout.staged("instances", 1)
    table = read_parquet_bytes(restricted.get(key))
    texts = table.column("header_json").to_pylist()
    texts[0] = texts[0][:-1] + f', "leak": "{identifier}"}}'
    column = table.schema.get_field_index("header_json")
    restricted.put(key, to_parquet_bytes(table.set_column(column, "header_json", pa.array(texts, pa.string()))))

    with pytest.raises(GateFailed) as failed:
        run_export(three_batches.settings, three_batches.request_id, user="olga")
    assert failed.value.failure.batch == "b-00001"
    report = json.loads(restricted.get(failed.value.report_key))
    assert report["failures"] == ["batch b-00001: instances/no_source_identifier_in_text/header_json"]
    assert identifier not in json.dumps(report)  # names and counts, never the value
    verdicts = {b["batch"]: b for b in report["batches"]}
    for name in ("b-00000", "b-00002"):
        assert verdicts[name]["passed"] and "validated_together" not in verdicts[name]  # validated alone
    assert not verdicts["b-00001"]["passed"]


def test_a_split_study_whose_rows_differ_is_validated_in_each_batch(three_batches: Prepared) -> None:
    """A study with objects in two batches has a row in each; the group keeps only rows equal to
    an earlier batch's out, so a later row that differs (here: carrying an identifier) is still
    validated, and fails its batch."""
    restricted, run_id, _ = _staged_without_verdicts(three_batches)
    layout = export_status(three_batches.settings, run_id).layout
    first = read_parquet_bytes(restricted.get(layout.staged("studies", 0)))
    key = layout.staged("studies", 1)
    second = read_parquet_bytes(restricted.get(key))
    split = set(first.column("StudyInstanceUID").to_pylist()) & set(second.column("StudyInstanceUID").to_pylist())
    assert split, "the fixture's batches split a study"
    identifier = next(v for v in BatchSummary.from_json(restricted.get(layout.marker(0))).forbidden if len(v) > 3)
    row = second.column("StudyInstanceUID").to_pylist().index(min(split))
    column = second.schema.get_field_index("StudyDescription")
    values = second.column("StudyDescription").to_pylist()
    values[row] = identifier
    restricted.put(key, to_parquet_bytes(second.set_column(column, "StudyDescription", pa.array(values, pa.string()))))

    with pytest.raises(GateFailed) as failed:
        run_export(three_batches.settings, three_batches.request_id, user="olga")
    report = json.loads(restricted.get(failed.value.report_key))
    assert {f.split(":")[0] for f in report["failures"]} == {"batch b-00001"}
    assert identifier not in json.dumps(report)
