"""The run folder: typed hand-offs stored and read back, and failures that name stage and batch."""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from export_testing import lakehouse
from lakehouse_testing import Prepared, reason_lines

from lakehouse.export import (
    BatchSummary,
    GateFailed,
    GateVerdict,
    RunLayout,
    RunState,
    StageFailure,
    export_status,
    run_export,
)
from lakehouse.export.layout import run_id_of_state_key
from lakehouse.export.state import list_runs, load_state, save_state
from lakehouse.storage.local import LocalStore


def test_the_layout_names_every_key_of_a_run() -> None:
    layout = RunLayout("run-1", "lung-ai")
    assert layout.state == "exports/run-1/state.json"
    assert layout.plan == "exports/run-1/plan.json"
    assert layout.staged("instances", 3) == "exports/run-1/staged/instances/b-00003.parquet"
    assert layout.marker(3) == "exports/run-1/staged/_done/b-00003.json"
    assert layout.is_marker(layout.marker(3)) and not layout.is_marker(layout.verdict(3))
    assert layout.verdict(3) == "exports/run-1/staged/_gate/b-00003.json"
    assert layout.gate_report == "exports/run-1/gate-report.json"
    assert layout.staging_object("lung-ai/objects/1/2/3.dcm") == "lung-ai/_staging/run-1/lung-ai/objects/1/2/3.dcm"
    assert run_id_of_state_key(layout.state) == "run-1"
    assert run_id_of_state_key(layout.plan) is None


def test_hand_offs_round_trip_through_the_run_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    state = RunState(
        run_id="run-1", request_id="req-1", project="lung-ai", engine="local", user="olga", status="running",
        quarantined={"burned_in_risk": 2}, table_versions={"instances": 3, "lineage": None},
        error=StageFailure("deidentify", "b-00003", "KeyError"), attempts=2,
    )
    save_state(store, state)
    assert load_state(store, "run-1") == state
    assert list_runs(store) == [state] and list_runs(store, "req-other") == []

    summary = BatchSummary(batch=3, exported=5, quarantined={"source_changed": 1}, bytes_read=10, bytes_written=8,
                           forbidden=("MRN-0042", "DOE^JOHN"))
    store.put(state.layout.marker(3), summary.to_json())
    assert BatchSummary.from_json(store.get(state.layout.marker(3))) == summary
    assert "MRN-0042" not in repr(summary)  # source identifiers never show in a repr

    verdict = GateVerdict(batch=3, passed=False, failures=("instances/expect_column_values_to_be_unique",),
                          report={"rows": {"instances": 5}, "checks": []})
    store.put(state.layout.verdict(3), verdict.to_json())
    assert GateVerdict.from_json(store.get(state.layout.verdict(3))) == verdict


def _killed_after_first_batch(prepared: Prepared, point: str = "after_batch:0") -> RunState:
    """A run killed (kill -9) right after its first batch (or its verdict); one worker."""
    config = ["--config", str(prepared.config), "--user", "olga"]
    killed = lakehouse("export", "run", prepared.request_id, "--workers", "1", *config,
                       env={"LAKEHOUSE_FAULT_KILL_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    listed = lakehouse("export", "list", "--request", prepared.request_id, "--json", "--config", str(prepared.config))
    (run,) = json.loads(listed.stdout)["runs"]
    assert run["status"] == "running" and run["batches"] >= 3
    return export_status(prepared.settings, run["run_id"])


def test_a_resumed_run_reads_summaries_and_verdicts_back(prepared: Prepared) -> None:
    state = _killed_after_first_batch(prepared, "after_gate:0")  # batch 0 staged and validated
    restricted = LocalStore(prepared.root / "restricted")
    layout = state.layout
    summary = BatchSummary.from_json(restricted.get(layout.marker(0)))
    verdict = GateVerdict.from_json(restricted.get(layout.verdict(0)))
    plan = json.loads(restricted.get(layout.plan))["batches"]
    assert summary.exported + sum(summary.quarantined.values()) == len(plan[0])
    assert verdict.passed and verdict.batch == 0

    # What the resumed run finds in the folder is what it uses: batch 0 is neither redone
    # nor validated again. A marked-up summary and a failing verdict show it.
    extra = 10**12
    restricted.put(layout.marker(0), replace(summary, bytes_read=summary.bytes_read + extra).to_json())
    restricted.put(layout.verdict(0), replace(verdict, passed=False, failures=("instances/injected",)).to_json())
    with pytest.raises(GateFailed) as excinfo:
        run_export(prepared.settings, prepared.request_id, user="olga", workers=1)
    assert excinfo.value.failure.stage == "gate" and excinfo.value.failure.batch == "b-00000"

    failed = export_status(prepared.settings, state.run_id)
    assert failed.status == "failed" and failed.resumed
    assert failed.error == excinfo.value.failure
    assert failed.bytes_read > extra
    report = json.loads(restricted.get(failed.gate_report or ""))
    assert report["failures"] == ["batch b-00000: instances/injected"]
    assert [b["batch"] for b in report["batches"]] == [f"b-{i:05d}" for i in range(state.batches)]


def test_a_failing_batch_names_its_stage_and_batch(prepared: Prepared) -> None:
    state = _killed_after_first_batch(prepared)
    config = ["--config", str(prepared.config)]
    # Batch 1 cannot stage its instances rows: a folder sits where the file goes.
    blocker = prepared.root / "restricted" / state.layout.staged("instances", 1)
    blocker.mkdir(parents=True)

    failed = lakehouse("export", "run", prepared.request_id, "--workers", "1", "--user", "olga", "--json", *config)
    assert failed.returncode == 1
    assert reason_lines(failed.stderr) == ["lakehouse: export failed at stage write, batch b-00001: IsADirectoryError"]
    error = json.loads(failed.stdout)
    assert error["code"] == "export_stage_error"
    assert error["details"] == {"stage": "write", "batch": "b-00001"}

    status = json.loads(lakehouse("export", "status", state.run_id, "--json", *config).stdout)
    assert status["status"] == "failed"  # and resumable
    assert status["error"] == {"stage": "write", "batch": "b-00001", "reason": "IsADirectoryError"}
    text = lakehouse("export", "status", state.run_id, *config).stdout
    assert "failed at stage write, batch b-00001: IsADirectoryError" in text
    listed = lakehouse("export", "list", *config).stdout
    assert f"{state.run_id}  failed" in listed and "(failed at stage write, batch b-00001" in listed

    # Cleared, the same run resumes and finishes; the recorded failure goes with it.
    shutil.rmtree(blocker)
    done = run_export(prepared.settings, prepared.request_id, user="olga").state
    assert done.run_id == state.run_id and done.status == "succeeded" and done.error is None
    assert export_status(prepared.settings, state.run_id).to_dict() == done.to_dict()
