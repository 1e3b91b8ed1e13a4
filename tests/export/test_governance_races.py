"""Governance reaches a running export: revocations and opt-outs raced against a run paused
at chosen points (``LAKEHOUSE_FAULT_PAUSE_AT``). Before the publish point a revoked run
publishes nothing and an opted-out patient is withheld; after it, the purge waits for the
run's lease and then removes what it published: it never interleaves with a commit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from export_testing import PROJECT
from forked_cli import CliChild, CliServer
from lake_check import LakeView, broken_invariants, differences, view, without
from lakehouse_testing import Prepared

from lakehouse import governance
from lakehouse.export.keys import load_project_key
from lakehouse.workflows import revoke_request


def _paused_export(cli: CliServer, prepared: Prepared, point: str, out: Path) -> tuple[CliChild, Path]:
    """An export run paused at ``point`` (it holds its lease meanwhile); remove the flag to go on."""
    flag = out / f"paused-{point.replace(':', '-')}"
    child = cli.start(
        ["export", "run", prepared.request_id, "--config", str(prepared.config), "--user", "olga", "--json"],
        out,
        {"LAKEHOUSE_FAULT_PAUSE_AT": f"{point}={flag}"},
    )
    _until(lambda: flag.exists() or child.done, "the run to reach the pause point")
    assert not child.done, child.output
    return child, flag


def _until(condition, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


def _admin(cli: CliServer, prepared: Prepared, out: Path, *args: str) -> CliChild:
    return cli.start([*args, "--config", str(prepared.config), "--user", "root", "--json"], out)


@pytest.mark.parametrize("point", ["after_batch:0", "before_publish"])
def test_a_request_revoked_during_the_run_publishes_nothing(
    point: str, small: Prepared, cli_server: CliServer, tmp_path: Path
) -> None:
    run, flag = _paused_export(cli_server, small, point, tmp_path)
    revoked = revoke_request(small.settings, small.request_id, user="root", reason="IRB withdrawn")
    assert revoked.request.status == "revoked"  # the run holds the lease: it voids itself
    flag.unlink()
    assert run.wait() == 3, run.output
    assert f"request {small.request_id} is revoked: run " in run.output and "published nothing" in run.output

    lake = view(small.root, PROJECT)
    assert not lake.objects and not lake.lineage and all(df.height == 0 for df in lake.tables.values())
    assert [r["status"] for r in lake.runs] == ["revoked"]
    assert lake.runs[0]["error"]["stage"] == "governance"
    assert not broken_invariants(lake, key=load_project_key(small.settings, PROJECT))


def test_a_revoke_and_purge_after_the_publish_point_waits_then_removes_everything(
    small: Prepared, cli_server: CliServer, tmp_path: Path
) -> None:
    run, flag = _paused_export(cli_server, small, "after_commit:lineage", tmp_path)
    purge = _admin(cli_server, small, tmp_path, "request", "revoke", small.request_id, "--reason", "withdrawn", "--purge")
    _until(lambda: governance.get_request(small.settings, small.request_id).status == "revoked", "the revocation")
    time.sleep(0.5)
    assert not purge.done, "the purge must wait for the run's lease"
    flag.unlink()
    assert run.wait() == 0, run.output  # approved at its publish point: it finishes what it began
    assert purge.wait() == 0, purge.output
    assert purge.json()["purge"]["instances"] == run.json()["exported"] > 0

    lake = view(small.root, PROJECT)
    assert not lake.objects and not lake.lineage and all(df.height == 0 for df in lake.tables.values())
    key = load_project_key(small.settings, PROJECT)
    assert not broken_invariants(lake, key=key, purged_requests={small.request_id})


@pytest.mark.parametrize("point", ["after_batch:0", "before_publish", "after_commit:series"])
def test_an_optout_purge_during_the_run_leaves_nothing_of_the_patient(
    point: str, small: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    patient = small_baseline.lineage[0]["source_patient_id"]
    theirs = sum(r["source_patient_id"] == patient for r in small_baseline.lineage)
    run, flag = _paused_export(cli_server, small, point, tmp_path)
    purge = _admin(cli_server, small, tmp_path, "optout", "purge", "--patient-id", patient)
    _until(lambda: patient in governance.opted_out_patient_ids(small.settings), "the opt-out")
    flag.unlink()
    assert run.wait() == 0, run.output
    assert purge.wait() == 0, purge.output
    published = run.json()
    purged = purge.json()
    if point == "after_commit:series":  # past the publish point: published, then purged
        assert published["withheld_opted_out"] == 0 and purged["instances"] == theirs
    else:  # withheld at the publish point: never published
        assert published["withheld_opted_out"] == theirs and purged["instances"] == 0
    assert published["exported"] == len(small_baseline.lineage) - published["withheld_opted_out"]

    lake = view(small.root, PROJECT)
    key = load_project_key(small.settings, PROJECT)
    assert not broken_invariants(lake, key=key, opted_out={patient})
    assert not differences(lake, without(small_baseline, {patient}))


def test_an_optout_without_purge_is_withheld_at_the_publish_point(
    small: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    patient = small_baseline.lineage[-1]["source_patient_id"]
    run, flag = _paused_export(cli_server, small, "before_publish", tmp_path)
    governance.add_optout(small.settings, user="root", patient_id=patient, reason="letter of 2 May")
    flag.unlink()
    assert run.wait() == 0, run.output
    assert run.json()["withheld_opted_out"] == sum(r["source_patient_id"] == patient for r in small_baseline.lineage)
    lake = view(small.root, PROJECT)
    assert not broken_invariants(lake, key=load_project_key(small.settings, PROJECT), opted_out={patient})
    assert not differences(lake, without(small_baseline, {patient}))
