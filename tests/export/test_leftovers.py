"""Nothing left behind: a finished or voided run's staging goes, temporary files of killed
writes are removed by the next holder of the project's lease, and quarantine rows are
recorded once per request, object and reason however often the request runs."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from export_testing import PROJECT
from forked_cli import CliServer
from lake_check import LakeView, broken_invariants, differences, view
from lakehouse_testing import Prepared

from lakehouse import lake
from lakehouse.export import run_export
from lakehouse.export.keys import load_project_key
from lakehouse.storage.writers import writer_tag
from lakehouse.workflows import revoke_request


def _export_args(prepared: Prepared) -> list[str]:
    return ["export", "run", prepared.request_id, "--config", str(prepared.config), "--user", "olga", "--json"]


def test_a_finished_run_leaves_no_staging_and_a_rerun_no_second_quarantine_row(small: Prepared) -> None:
    first = run_export(small.settings, small.request_id, user="olga").state
    assert sum(first.quarantined.values()) >= 1
    quarantine = lake.table(small.settings, "quarantine").read().num_rows
    assert quarantine == sum(first.quarantined.values())
    again = run_export(small.settings, small.request_id, user="olga").state
    assert again.quarantined == first.quarantined  # refused again, for the same reasons
    assert lake.table(small.settings, "quarantine").read().num_rows == quarantine
    done = view(small.root, PROJECT)
    assert not done.staged and not done.temporary
    assert not (small.root / "research" / PROJECT / "_staging").exists()


def test_a_revoked_requests_killed_run_is_voided_and_its_staging_removed(
    small: Prepared, cli_server: CliServer, tmp_path: Path
) -> None:
    code, _ = cli_server.run(_export_args(small), tmp_path, {"LAKEHOUSE_FAULT_KILL_AT": "after_batch:0"})
    assert code == -signal.SIGKILL
    assert view(small.root, PROJECT).staged, "the killed run staged its first batch"
    revoke_request(small.settings, small.request_id, user="bob", reason="withdrawn")  # no purge
    lake_now = view(small.root, PROJECT)
    assert [r["status"] for r in lake_now.runs] == ["revoked"]
    assert not lake_now.staged and not lake_now.objects
    assert not broken_invariants(lake_now, key=load_project_key(small.settings, PROJECT))


def test_temporary_files_of_killed_writers_go_with_the_next_run(
    small: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    code, _ = cli_server.run(_export_args(small), tmp_path, {"LAKEHOUSE_FAULT_KILL_AT": "after_batch:0"})
    assert code == -signal.SIGKILL
    (run_id,) = [p.parent.name for p in (small.root / "restricted" / "exports").glob("*/state.json")]
    # What a writer killed mid-write leaves: a temporary file named after it (here a process
    # of this machine that is gone), in the run folder, the staging area and the lease folder.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dead = f".tmp-{writer_tag().rsplit('-', 1)[0]}-{gone}-x1y2z3"
    foreign = ".tmp-0123456789ab-77-a1b2c3"  # a writer elsewhere, maybe still writing: kept for now
    planted = [
        small.root / "restricted" / "exports" / run_id / "staged" / "instances" / dead,
        small.root / "research" / PROJECT / "_staging" / run_id / dead,
        small.root / "restricted" / "leases" / PROJECT / dead,
        small.root / "research" / PROJECT / "_staging" / run_id / "lung-ai" / foreign,
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")

    code, resumed = cli_server.run(_export_args(small), tmp_path)
    assert code == 0, resumed.output
    done = view(small.root, PROJECT)
    assert done.temporary == [str(planted[-1].relative_to(small.root))]
    planted[-1].unlink()
    done = view(small.root, PROJECT)
    assert not broken_invariants(done, key=load_project_key(small.settings, PROJECT))
    assert not differences(done, small_baseline)
