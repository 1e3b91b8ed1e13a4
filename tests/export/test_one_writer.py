"""One writer per project: two real ``lakehouse export run`` processes of one request, at
once or 8 s apart, publish one set of rows; the one refused names the holder and since when;
a killed run's lease is taken over and the run resumes; a holder paused past its lease's
term stops without writing once another process took the run over."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from export_testing import PROJECT
from forked_cli import CliServer
from lake_check import LakeView, broken_invariants, differences, view
from lakehouse_testing import Prepared, reason_lines, set_sections

from lakehouse.export.keys import load_project_key

BUSY = re.compile(
    r"^lakehouse: project lung-ai is busy: export of (req-[0-9a-f]{12}) by olga on \S+ \(pid (\d+)\) "
    r"holds its lease since (\d{4}-\d\d-\d\dT[\d:.]+\+00:00)$"
)


def _start(prepared: Prepared) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_FAULT")}
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "export", "run", prepared.request_id, "--config", str(prepared.config),
         "--user", "olga", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _check_one_set_of_rows(prepared: Prepared, baseline: LakeView, outcomes: list[tuple[int, str, str]]) -> None:
    """Each run succeeded or was refused as busy; the lake is the uninterrupted run's, once."""
    exported = 0
    for code, out, err in outcomes:
        if code == 0:
            exported += json.loads(out)["exported"]
        else:
            assert code == 3, err
            match = BUSY.match("\n".join(reason_lines(err)).strip())
            assert match and match[1] == prepared.request_id, err
    assert exported == len(baseline.lineage)  # what one run exports, exported once
    lake = view(prepared.root, PROJECT)
    assert not broken_invariants(lake, key=load_project_key(prepared.settings, PROJECT))
    assert not differences(lake, baseline)
    later = subprocess.run(
        [sys.executable, "-m", "lakehouse", "export", "run", prepared.request_id, "--config", str(prepared.config),
         "--user", "olga", "--json"], capture_output=True, text=True, check=False,
    )
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["skipped_already_exported"] == len(baseline.lineage)


@pytest.mark.parametrize("apart", [0, 8])
def test_two_export_processes_publish_one_set_of_rows(apart: int, small: Prepared, small_baseline: LakeView) -> None:
    first = _start(small)
    time.sleep(apart)
    second = _start(small)
    outcomes = []
    for process in (first, second):
        out, err = process.communicate(timeout=600)
        outcomes.append((process.returncode, out, err))
    assert 3 in {code for code, _, _ in outcomes} or apart, "started together, one of them is refused"
    _check_one_set_of_rows(small, small_baseline, outcomes)


def test_a_killed_runs_lease_is_taken_over_and_the_run_resumes(
    small: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    args = ["export", "run", small.request_id, "--config", str(small.config), "--user", "olga", "--json"]
    code, _ = cli_server.run(args, tmp_path, {"LAKEHOUSE_FAULT_KILL_AT": "after_batch:0"})
    assert code == -signal.SIGKILL
    code, resumed = cli_server.run(args, tmp_path)
    assert code == 0, resumed.output
    assert resumed.json()["resumed"] is True
    assert not differences(view(small.root, PROJECT), small_baseline)


def test_a_holder_paused_past_its_term_stops_once_taken_over(
    small: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    set_sections(small.config, export={"lease_seconds": 2})
    args = ["export", "run", small.request_id, "--config", str(small.config), "--user", "olga", "--json"]
    flag = tmp_path / "paused"
    first = cli_server.start(args, tmp_path, {"LAKEHOUSE_FAULT_PAUSE_AT": f"before_publish={flag}"})
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert time.monotonic() < deadline and not first.done, first.output
        time.sleep(0.02)
    first.signal(signal.SIGSTOP)  # alive but frozen: its heartbeat stops with it
    flag.unlink()
    time.sleep(2.5)  # past the lease's term

    code, second = cli_server.run(args, tmp_path)
    assert code == 0, second.output
    taken_over = second.json()
    assert taken_over["resumed"] is True and taken_over["status"] == "succeeded"

    first.signal(signal.SIGCONT)
    assert first.wait() == 1
    assert first.output.strip().endswith(
        "lost the lease on project lung-ai: another process may resume the work; stopped"
    )
    lake = view(small.root, PROJECT)
    assert not broken_invariants(lake, key=load_project_key(small.settings, PROJECT))
    assert not differences(lake, small_baseline)
    (state,) = lake.runs  # written by the process that finished it, not overwritten since
    assert state["status"] == "succeeded" and state["run_id"] == taken_over["run_id"]
