"""A decision and its audit event are one step: real `lakehouse request approve` processes killed
(SIGKILL) at random moments, each trial checked "effective decision ⇔ its audit event".

The approve runs in a child forked from a warm server (tests/export/forked_cli.py), so the kill
lands in the command's own work (freeze, decision commit, audit commit), not in imports. A third
of the trials kill at any moment of an approve; the others watch the decision table's Delta log
and kill a random few milliseconds after the decision commit appears, between it and the audit
commit. Some trials approve again afterwards: the command must then succeed once. ``LAKEHOUSE_KILL_TRIALS`` (default 32) and
``LAKEHOUSE_KILL_SEED`` change the draw; ``-s`` prints each trial.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Lake, standard_catalog, write_catalog

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.lake import table as lake_table

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from forked_cli import CliChild, CliServer

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("LAKEHOUSE_KILL_TRIALS", "32"))
SEED = int(os.environ.get("LAKEHOUSE_KILL_SEED", "20261"))
EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


@pytest.fixture(scope="module")
def server() -> Iterator[CliServer]:
    cli = CliServer()
    yield cli
    cli.close()


@pytest.fixture
def local(tmp_path: Path) -> tuple[Lake, Settings]:
    root = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (root / zone).mkdir(parents=True)
    lake = Lake(root, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets")))
    settings = lake.settings(approvals=1)
    write_catalog(settings, standard_catalog())
    return lake, settings


def submit(settings: Settings) -> str:
    return governance.submit_request(
        settings, user="alice", project="p", title="t", purpose="p", protocol="IRB-1",
        cohort={"modalities": ["CT"]}, options=[],
    ).id


def approve_args(lake: Lake, request_id: str) -> list[str]:
    return ["request", "approve", request_id, "--expires", EXPIRES, "--user", "bob", "--yes",
            "--json", "--config", str(lake.config)]


def commits(settings: Settings) -> int:
    return len(list((settings.restricted.local_path / "governance/events/_delta_log").glob("*.json")))


def kill_after_decision_commit(settings: Settings, child: CliChild, before: int, delay: float) -> float:
    """Kill ``child`` ``delay`` seconds after its decision commit lands (or when it ends); the
    seconds waited for the commit."""
    started = time.monotonic()
    while commits(settings) == before and not child.done:
        time.sleep(0.001)
    time.sleep(delay)
    child.kill()
    return time.monotonic() - started


def check(settings: Settings, request_id: str) -> tuple[str, int, int]:
    """(status, approve rows stored, approve audit events); fails when a decision and its
    audit event disagree."""
    rows = [r for r in lake_table(settings, "governance_events").read().to_pylist()
            if r["request_id"] == request_id and r["action"] == "approve"]
    named = {e.subject_event_id for e in governance.list_audit(settings, request_id=request_id)
             if e.action == "request.approve"}
    request = governance.get_request(settings, request_id)
    live = {d.event_id for d in request.decisions if d.action == "approve"}
    assert live == named, f"effective approvals {live} but audit events name {named}"
    assert named <= {r["event_id"] for r in rows}, "an audit event names no stored decision"
    assert (request.status == "approved") == bool(live)
    assert governance.verify_audit(settings).ok
    return request.status, len(rows), len(named)


def test_kill_during_approve_leaves_both_or_neither(
    server: CliServer, local: tuple[Lake, Settings], tmp_path: Path
) -> None:
    lake, settings = local
    out = tmp_path / "out"
    out.mkdir()
    code, child = server.run(approve_args(lake, submit(settings)), out)
    assert code == 0, child.output
    started = time.monotonic()
    code, child = server.run(approve_args(lake, submit(settings)), out)
    assert code == 0, child.output
    duration = time.monotonic() - started
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    reruns = {"void row": 0, "nothing": 0}
    for number in range(TRIALS):
        request_id = submit(settings)
        before = commits(settings)
        child = server.start(approve_args(lake, request_id), out)
        if number % 3 == 0:
            kill_after = rng.uniform(0, duration)
            time.sleep(kill_after)
            child.kill()
        else:
            kill_after = kill_after_decision_commit(settings, child, before, rng.uniform(0, 0.08))
        exit_code = child.wait()
        status, stored, audited = check(settings, request_id)
        outcome = f"{'killed' if exit_code < 0 else 'finished'} rows={stored} audited={audited}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print(f"trial {number}: kill after {kill_after:.3f}s of {duration:.3f}s: {outcome} -> {status}")
        kind = "void row" if stored > audited else "nothing" if stored == 0 else "done"
        if kind != "done" and reruns[kind] < 2:  # the command runs again after a kill (a void row:
            reruns[kind] += 1  # after waiting IN_FLIGHT_SECONDS for its audit event)
            code, again = server.run(approve_args(lake, request_id), out)
            assert code == 0, again.output
            assert check(settings, request_id)[0] == "approved"
    print(outcomes)
    assert sum(outcomes.values()) == TRIALS
    assert any(k.startswith("killed") for k in outcomes), "no trial killed the command"
