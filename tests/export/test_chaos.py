"""Chaos: an export killed (SIGKILL) at a random moment, in some trials with a second export,
a revoke-and-purge, an opt-out purge or a catalog sync started at another random moment.
Half the trials kill at any moment of the run, half at a random moment once it publishes
(gate, re-check, lineage, objects, tables). After each trial the request, if still approved,
is exported to the end, and the lake is
checked: no duplicate SOP Instance UID, nothing published without lineage, nothing of an
opted-out patient or a revoked request visible, nothing in staging, no temporary files, no
unfinished run, quarantine rows once; tables and objects equal to an uninterrupted run's
(less what was purged).

Bounded for CI: a small archive, CLI processes forked from a warm server (``forked_cli``).
``LAKEHOUSE_CHAOS_TRIALS`` (default 32) and ``LAKEHOUSE_CHAOS_SEED`` change the trials and
the random draw; run with ``-s`` to see each trial's outcome.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from export_testing import PROJECT, ROLES, prepare
from forked_cli import CliChild, CliServer
from lake_check import LakeView, broken_invariants, differences, view, without
from lakehouse_testing import Prepared, set_sections

from lakehouse.export.keys import load_project_key

pytestmark = pytest.mark.slow

TRIALS = int(os.environ.get("LAKEHOUSE_CHAOS_TRIALS", "32"))
SEED = int(os.environ.get("LAKEHOUSE_CHAOS_SEED", "20260"))
# What races the killed export, one trial after the other.
SCENARIOS = ("kill", "second-export", "revoke-purge", "kill", "optout-purge", "catalog-sync")


# The tables a run commits, in order: how far it got when killed.
COMMITTED = ("restricted/lineage", f"research/{PROJECT}/tables/studies", f"research/{PROJECT}/tables/series",
             f"research/{PROJECT}/tables/instances", f"research/{PROJECT}/tables/attributes", "restricted/quarantine")


@dataclass
class Trial:
    number: int
    scenario: str
    workers: int
    publishing: bool  # killed once the run publishes (else at any moment)
    kill_after: float  # seconds after the start, or after publishing began
    other_after: float | None
    killed: bool = False  # False: the run ended before the kill
    run_exit: int | None = None
    run_state: str = "-"  # the killed run's status as it was left, and tables committed
    other_exit: int | None = None
    settle_exit: int | None = None
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        other = f" other@{self.other_after:.2f}s→{self.other_exit}" if self.other_after is not None else ""
        verdict = "ok" if not self.failures else "FAILED: " + "; ".join(self.failures)
        return (
            f"#{self.number:02d} {self.scenario:<13} w{self.workers} "
            f"kill@{'publish+' if self.publishing else ''}{self.kill_after:.2f}s "
            f"{'killed' if self.killed else 'ended'}({self.run_exit}, {self.run_state}){other} "
            f"settle→{self.settle_exit}  {verdict}"
        )


@dataclass
class Chaos:
    template: Prepared
    baseline: LakeView
    duration: float  # seconds of one uninterrupted run, start to exit
    publishing: float  # seconds of its last part, from "committing" to exit
    cli: CliServer
    patients: list[str]


@pytest.fixture(scope="module")
def chaos(cli_server: CliServer, tmp_path_factory: pytest.TempPathFactory) -> Chaos:
    from lakehouse.config import init_root
    from lakehouse.synth import synthesize_archive

    root = tmp_path_factory.mktemp("chaos") / "lh"
    config = init_root(root)
    set_sections(config, roles=ROLES, export={"batch_size": 7, "workers": 1})
    synthesize_archive(root / "archive", patients=2, seed=3, ct_slices=2)
    template = Prepared(root, config, prepare(config))
    done = template.copy(root.parent / "uninterrupted")
    started = time.monotonic()
    child = cli_server.start(_export_args(done, 1), root.parent)
    publishing = None
    while not child.done:
        if publishing is None and _status(done).startswith("committing"):
            publishing = time.monotonic()
        time.sleep(0.005)
    assert child.wait() == 0 and publishing is not None, child.output
    duration = time.monotonic() - started
    baseline = view(done.root, PROJECT)
    printed = child.output[child.output.index("{"):]  # after the asserted-mode warning line
    assert json.loads(printed)["batches"] == 2 and baseline.lineage
    patients = sorted({r["source_patient_id"] for r in baseline.lineage})
    return Chaos(template, baseline, duration, duration - (publishing - started), cli_server, patients)


def _status(prepared: Prepared) -> str:
    """The run's status and how many tables it committed (a trial's root holds one run)."""
    states = [json.loads(p.read_text()) for p in (prepared.root / "restricted" / "exports").glob("*/state.json")]
    if not states:
        return "-"
    status = states[0]["status"]
    if status in ("committing", "succeeded"):
        done = sum(any((prepared.root / t / "_delta_log").glob("*.json")) for t in COMMITTED)
        status += f" {done}/{len(COMMITTED)}"
    return status


def _export_args(prepared: Prepared, workers: int) -> list[str]:
    return ["export", "run", prepared.request_id, "--config", str(prepared.config), "--user", "olga",
            "--workers", str(workers), "--json"]


def _other(chaos: Chaos, prepared: Prepared, scenario: str, patient: str, out: Path) -> CliChild:
    admin = ["--config", str(prepared.config), "--user", "root", "--json"]
    args = {
        "second-export": _export_args(prepared, 1),
        "revoke-purge": ["request", "revoke", prepared.request_id, "--reason", "chaos", "--purge", *admin],
        "optout-purge": ["optout", "purge", "--patient-id", patient, *admin],
        "catalog-sync": ["catalog", "sync", "--config", str(prepared.config), "--user", "olga", "--json"],
    }[scenario]
    return chaos.cli.start(args, out)


def _run_trial(chaos: Chaos, number: int, rng: random.Random, out: Path) -> Trial:
    scenario = SCENARIOS[number % len(SCENARIOS)]
    publishing = number % 2 == 1
    trial = Trial(
        number=number,
        scenario=scenario,
        workers=2 if scenario == "kill" and number % 4 == 0 else 1,
        publishing=publishing,
        kill_after=rng.uniform(0.0, chaos.publishing) if publishing else rng.uniform(0.05, 0.9 * chaos.duration),
        other_after=None if scenario == "kill" else rng.uniform(0.0, chaos.duration),
    )
    patient = rng.choice(chaos.patients)
    prepared = chaos.template.copy(out / "lh")
    started = time.monotonic()
    run = chaos.cli.start(_export_args(prepared, trial.workers), out)
    other = None
    kill_at = None if publishing else started + trial.kill_after
    while trial.run_exit is None or (trial.other_after is not None and other is None):
        now = time.monotonic()
        if other is None and trial.other_after is not None and now >= started + trial.other_after:
            other = _other(chaos, prepared, scenario, patient, out)
        if kill_at is None and (run.done or _status(prepared).startswith("committing")):
            kill_at = now + trial.kill_after
        if trial.run_exit is None and kill_at is not None and now >= kill_at:
            trial.killed = not run.done
            run.kill()
            trial.run_exit = run.wait()
            trial.run_state = _status(prepared)
        time.sleep(0.005)
    if other is not None:
        trial.other_exit = other.wait()
        if trial.other_exit != 0 and not (scenario == "second-export" and trial.other_exit == 3):
            trial.failures.append(f"the concurrent {scenario} exited {trial.other_exit}: {other.output.strip()[-200:]}")

    revoked = scenario == "revoke-purge"
    code, settle = chaos.cli.run(_export_args(prepared, 1), out)
    trial.settle_exit = code
    if code != (3 if revoked else 0):
        trial.failures.append(f"settling export exited {code}: {settle.output.strip()[-200:]}")
    opted_out = {patient} if scenario == "optout-purge" else set()
    lake = view(prepared.root, PROJECT)
    trial.failures += broken_invariants(
        lake,
        key=load_project_key(prepared.settings, PROJECT),
        opted_out=opted_out,
        purged_requests={prepared.request_id} if revoked else set(),
    )
    expected = without(chaos.baseline, everything=True) if revoked else without(chaos.baseline, opted_out)
    trial.failures += differences(lake, expected)
    return trial


def test_chaos_kill_and_race_export_runs(chaos: Chaos, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    trials = []
    started = time.monotonic()
    for number in range(TRIALS):
        out = tmp_path / f"trial-{number:02d}"
        out.mkdir()
        trial = _run_trial(chaos, number, rng, out)
        print(trial.line())
        trials.append(trial)
    seconds = time.monotonic() - started
    outcomes = Counter(t.run_state.split(" ")[0] if t.killed else "ended before the kill" for t in trials)
    print(f"{len(trials)} trials in {seconds:.0f} s (uninterrupted run {chaos.duration:.1f} s), seed {SEED}: "
          + ", ".join(f"{n} {state}" for state, n in sorted(outcomes.items())))
    failed = [t.line() for t in trials if t.failures]
    assert not failed, "\n".join(failed)
    assert sum(t.killed for t in trials) >= len(trials) // 2, "most trials must kill a run in progress"
