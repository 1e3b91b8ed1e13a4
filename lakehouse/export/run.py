"""The export job: refuse or plan → execute batches → gate → re-check → publish → commit.

A run holds its project's lease (``lease``) from before it plans until it ends, so one
export writes a project's tables at a time; a second one is refused with the holder, and a
killed holder's lease is taken over once stale. The lease-holder sweeps the project first
and last (``staging``: what killed and voided runs left).

A run is resumable: ``run_export`` on a request whose last run did not finish picks that
run up again (same run id, same plan), redoes only unfinished batches and commits only what
is not committed yet. The request is checked again after every batch and right before
anything is published: a run whose request was revoked or expired meanwhile ends so,
publishing nothing; what patients opted out since the plan is withheld (``commit``). A
failure is recorded in the run's state as the stage (and batch) that failed, with a
PHI-free reason.

A batch with archived objects no GET can read yet (``storage.tiers``) reads nothing; the
run then ends ``waiting_for_restore`` (counts per reason in its state), still resumable:
after the operator's ``export restore``, `export run` picks it up like any unfinished run.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from lakehouse import governance, lineage, quality
from lakehouse.config import Settings
from lakehouse.deid.risk import audit_fields
from lakehouse.errors import LakehouseError, Refused
from lakehouse.export import commit, engines, gate, staging
from lakehouse.export.context import RunContext, RunOptions
from lakehouse.export.errors import (
    ExportStageError,
    GateFailed,
    LeaseHeld,
    LeaseLost,
    StageFailure,
    reason_of,
    stage,
)
from lakehouse.export.keys import settings_credentials
from lakehouse.export.lease import acquire
from lakehouse.export.plan import FloorRefused, Plan, new_plan, unfinished_plan
from lakehouse.export.results import BatchWaiting
from lakehouse.export.state import VOIDED_STATUSES, RunState, list_runs, load_state
from lakehouse.export.worker import BatchResult, use_system_allocator
from lakehouse.governance import ManifestEntry
from lakehouse.storage import open_zone

FAULT_ENV = "LAKEHOUSE_FAULT_KILL_AT"
PAUSE_ENV = "LAKEHOUSE_FAULT_PAUSE_AT"


def checkpoint(name: str) -> None:
    """Fault injection for the kill, resume and race tests.

    ``LAKEHOUSE_FAULT_KILL_AT=<name>`` makes the process kill itself with SIGKILL at that point,
    exactly like ``kill -9``. ``LAKEHOUSE_FAULT_PAUSE_AT=<name>=<file>`` makes it create
    ``<file>`` there and wait (its lease renewed) until the file is removed."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, flag = os.environ.get(PAUSE_ENV, "").partition("=")
    if point == name and flag:
        Path(flag).touch()
        while Path(flag).exists():
            time.sleep(0.02)


class _Withdrawn(ExportStageError):
    """The request is no longer approved: the run ends as the request did, publishing nothing."""

    def __init__(self, request_id: str, status: str, batch: str | None = None) -> None:
        super().__init__(StageFailure("governance", batch, f"request {request_id} is {status}"))
        self.status = staging.void_status(status)


@dataclass
class ExportOutcome:
    state: RunState

    @property
    def resumed(self) -> bool:
        return self.state.resumed

    def to_dict(self) -> dict[str, Any]:
        return self.state.to_dict()


@lineage.emits(lineage.EXPORT)
def run_export(
    settings: Settings,
    request_id: str,
    *,
    user: str,
    engine: str | None = None,
    workers: int | None = None,
    spark: Any = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> ExportOutcome:
    """Run (or resume) the export of an approved request. Raises Refused before any archive read
    when governance does not allow it or another process holds the project's lease (LeaseHeld),
    and when the request is revoked or expires during the run; GateFailed when the gate
    withholds the commit; ExportStageError (the run stays resumable) when a stage fails.
    ``engine`` and ``workers`` default to the ``[export]`` settings."""
    engine = engine or settings.export.engine
    if engine not in engines.ENGINES:
        raise LakehouseError(f"unknown engine {engine!r}; choose one of {', '.join(engines.ENGINES)}")
    governance.require_role(settings, user, "operators")
    use_system_allocator()
    permission = governance.may_run(settings, request_id, now=now)
    if not permission.allowed:
        if permission.request is not None and permission.request.status in VOIDED_STATUSES:
            staging.void_request_runs(settings, request_id, user=user)  # a killed run of it ends now
        _refused(settings, user, request_id, f"request {request_id} may not be exported: {permission.reason}")
    request = permission.request
    assert request is not None, "an allowed permission carries its request"
    quality.preload()  # Great Expectations takes seconds to import: start now, the gate needs it last
    options = RunOptions(engine=engine, workers=workers or settings.export.workers, spark=spark, progress=progress)
    restricted = open_zone(settings, "restricted")
    try:
        lease = acquire(
            restricted, request.project, user=user, purpose=f"export of {request.id}",
            term=settings.export.lease_seconds,
        )
    except LeaseHeld as exc:
        _refused(settings, user, request_id, str(exc), exc)
    with lease:
        staging.sweep_project(settings, lease, user=user)
        status = governance.get_request(settings, request_id).status
        if status != "approved":  # revoked or expired while this process waited for the lease
            _refused(settings, user, request_id, f"request {request_id} may not be exported: request is {status}")
        try:
            plan = unfinished_plan(restricted, request.id, engine) or new_plan(
                settings, restricted, request, permission.manifest, user=user, engine=engine,
                workers=options.workers, opted_out=governance.opted_out_patient_ids(settings),
            )
        except FloorRefused as exc:  # k below [policy] min_k whatever generalization does
            _refused(settings, user, request_id, str(exc), exc)
        state = plan.state
        if on_plan:
            on_plan(state.planned_objects)
        state.audit_head = governance.append_audit(
            settings, user=user, action="export.resume" if state.resumed else "export.start", request_id=request_id,
            details={
                "run_id": state.run_id, "objects": state.planned_objects, "batches": state.batches,
                **(audit_fields(state.risk) if state.risk else {}),
            },
        ).hash
        ctx = RunContext.open(settings, request, state, options, user, lease)
        _attempt(ctx, plan)
        staging.sweep_project(settings, lease, user=user)
    return ExportOutcome(state=state)


def _refused(settings: Settings, user: str, request_id: str, reason: str, exc: Refused | None = None) -> NoReturn:
    extra = (exc.details or {}) if isinstance(exc, FloorRefused) else {}  # the risk figures: counts only
    governance.append_audit(
        settings, user=user, action="export.refused", request_id=request_id, details={"reason": reason, **extra}
    )
    raise exc or Refused(reason)


def _attempt(ctx: RunContext, plan: Plan) -> None:
    """Execute, gate, re-check, publish and commit; record how the attempt ended in the run state."""
    state = ctx.state
    started = time.monotonic()
    state.status, state.error = "running", None
    state.waiting, state.waiting_batches = {}, 0
    ctx.save()
    try:
        waiting = _execute(ctx, plan.batches)
        if waiting:
            _wait_for_restores(ctx, waiting, started)
            return
        state.status = "committing"
        ctx.save()
        checkpoint("before_gate")
        with stage("gate"):
            summaries = ctx.summaries()
            state.count(summaries)
            state.gate_report = gate.check_run(ctx, summaries)
        checkpoint("before_publish")
        _still_approved(ctx)
        with stage("governance"):
            withheld = commit.Withheld.of(ctx, governance.opted_out_patient_ids(ctx.settings))
        state.count(summaries, len(withheld))
        state.table_versions = commit.publish(ctx, withheld, checkpoint)
    except _Withdrawn as exc:
        state.seconds = round(state.seconds + time.monotonic() - started, 3)
        staging.void_run(ctx.settings, ctx.lease, state, status=exc.status, reason=exc.failure.reason, user=ctx.user)
        ended = Refused(f"{exc.failure.reason}: run {state.run_id} ended {state.status} and published nothing")
        ended.details = {"run_id": state.run_id, "status": state.status}
        raise ended from None
    except GateFailed as exc:
        state.status, state.error, state.gate_report = "failed", exc.failure, exc.report_key
        _finish(ctx, started)
        staging.discard_staging(ctx.restricted, ctx.research, ctx.layout)
        raise
    except LeaseLost:
        raise  # the run is another process's now: write nothing
    except BaseException as exc:
        # A crash of ours (not a kill): the run ends failed, resumable, recording where it stopped.
        state.status = "failed"
        state.error = exc.failure if isinstance(exc, ExportStageError) else StageFailure("run", None, reason_of(exc))
        state.seconds += time.monotonic() - started
        ctx.save()
        raise
    state.status = "succeeded"
    _finish(ctx, started)
    checkpoint("before_discard")
    staging.discard_staging(ctx.restricted, ctx.research, ctx.layout)


def _still_approved(ctx: RunContext, batch: str | None = None) -> None:
    """Raise _Withdrawn unless the run's request is still approved (and unexpired)."""
    status = governance.get_request(ctx.settings, ctx.state.request_id).status
    if status != "approved":
        raise _Withdrawn(ctx.state.request_id, status, batch)


def _execute(ctx: RunContext, batches: list[list[ManifestEntry]]) -> list[BatchWaiting]:
    """Run the batches not done yet on the engine; the driver gates each one as it lands.
    Tasks carry neither the project key nor zone credentials (workers find their own).
    Returns the batches that wait for restores (archived objects no GET can read yet)."""
    waiting: list[BatchWaiting] = []
    pending = []
    for index, entries in enumerate(batches):
        if ctx.restricted.exists(ctx.layout.marker(index)):
            ctx.options.advance(len(entries))
        else:
            pending.append(index)

    def on_done(result: BatchResult) -> None:
        if isinstance(result, StageFailure):
            raise ExportStageError(result)
        if isinstance(result, BatchWaiting):
            waiting.append(result)  # nothing of it staged: an attempt after the restores redoes it
        else:
            with stage("gate", result.name):
                batch_gate.submit(result)  # gated on the gate's thread while workers go on
            ctx.options.advance(len(batches[result.batch]))
        checkpoint(f"after_batch:{result.batch}")
        ctx.lease.ensure()
        _still_approved(ctx, result.name)  # a revoked request stops reading the archive

    if not pending:
        return waiting
    batch_gate = gate.BatchGate(ctx, checkpoint, len(pending))
    try:
        with stage("execute"):
            engine = engines.open_engine(
                ctx.options.engine, workers=ctx.options.workers, credentials=settings_credentials(ctx.settings),
                spark=ctx.options.spark,
            )
            running = engine.slots(len(pending))  # the throttle is split between these
            tasks = engines.batch_tasks(ctx, {index: batches[index] for index in pending}, running)
            engine.run(tasks, on_done, running)
    except BaseException:
        batch_gate.close(quietly=True)  # the run's own failure is the one to report
        raise
    with stage("gate"):
        batch_gate.close()
    return waiting


def _wait_for_restores(ctx: RunContext, waiting: list[BatchWaiting], started: float) -> None:
    """Batches whose objects are archived and not restored yet: the run waits, resumable, its
    staged batches kept, until `export run` (an operator's, or a scheduler's) finds them readable."""
    state = ctx.state
    counts: Counter[str] = Counter()
    for batch in waiting:
        counts.update(batch.waiting)
    state.status = "waiting_for_restore"
    state.waiting, state.waiting_batches = dict(sorted(counts.items())), len(waiting)
    state.seconds = round(state.seconds + time.monotonic() - started, 3)
    ctx.save()
    state.audit_head = governance.append_audit(
        ctx.settings, user=ctx.user, action="export.waiting_for_restore", request_id=state.request_id,
        details={"run_id": state.run_id, "waiting": state.waiting, "waiting_batches": state.waiting_batches},
    ).hash
    ctx.save()


def _finish(ctx: RunContext, started: float) -> None:
    state = ctx.state
    state.seconds = round(state.seconds + time.monotonic() - started, 3)
    state.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    ctx.save()
    failure = {"failed_stage": state.error.stage, "failed_batch": state.error.batch} if state.error else {}
    state.audit_head = governance.append_audit(
        ctx.settings, user=ctx.user, action=f"export.{state.status}", request_id=state.request_id,
        details={
            "run_id": state.run_id,
            "exported": state.exported,
            "withheld_opted_out": state.withheld_opted_out,
            "quarantined": state.quarantined,
            "bytes_written": state.bytes_written,
            "table_versions": state.table_versions,
            "gate_report": state.gate_report,
            **failure,
        },
    ).hash
    ctx.save()  # the head after the run's last event: cutting it from the chain is detected


def export_status(settings: Settings, run_id: str) -> RunState:
    return load_state(open_zone(settings, "restricted"), run_id)


def export_runs(settings: Settings, request_id: str | None = None) -> list[RunState]:
    """Every export run (of one request, or of all), oldest first."""
    return list_runs(open_zone(settings, "restricted"), request_id)
