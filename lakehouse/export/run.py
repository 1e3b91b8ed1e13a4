"""The export job: refuse or plan → execute batches → gate → publish → commit.

A run is resumable: ``run_export`` on a request whose last run did not finish
picks that run up again (same run id, same plan), redoes only unfinished
batches and commits only what is not committed yet. A failure is recorded in
the run's state as the stage (and batch) that failed, with a PHI-free reason.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakehouse import governance, quality
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError, Refused
from lakehouse.export import commit, engines, gate
from lakehouse.export.context import RunContext, RunOptions
from lakehouse.export.errors import ExportStageError, GateFailed, StageFailure, reason_of, stage
from lakehouse.export.plan import Plan, new_plan, unfinished_plan
from lakehouse.export.state import RunState, list_runs, load_state
from lakehouse.export.worker import BatchResult, BatchTask, use_system_allocator
from lakehouse.governance import ManifestEntry
from lakehouse.storage import open_zone

FAULT_ENV = "LAKEHOUSE_FAULT_KILL_AT"


def checkpoint(name: str) -> None:
    """Fault injection for the kill-and-resume tests: ``LAKEHOUSE_FAULT_KILL_AT=<name>``
    makes the process kill itself with SIGKILL at that point, exactly like ``kill -9``."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class ExportOutcome:
    state: RunState

    @property
    def resumed(self) -> bool:
        return self.state.resumed

    def to_dict(self) -> dict[str, Any]:
        return self.state.to_dict()


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
    when governance does not allow it, GateFailed when the gate withholds the commit, and
    ExportStageError (the run stays resumable) when a stage fails.
    ``engine`` and ``workers`` default to the ``[export]`` settings."""
    engine = engine or settings.export.engine
    if engine not in engines.ENGINES:
        raise LakehouseError(f"unknown engine {engine!r}; choose one of {', '.join(engines.ENGINES)}")
    governance.require_role(settings, user, "operators")
    use_system_allocator()
    permission = governance.may_run(settings, request_id, now=now)
    if not permission.allowed:
        governance.append_audit(
            settings, user=user, action="export.refused", request_id=request_id,
            details={"reason": permission.reason},
        )
        raise Refused(f"request {request_id} may not be exported: {permission.reason}")
    request = permission.request
    assert request is not None, "an allowed permission carries its request"
    options = RunOptions(engine=engine, workers=workers or settings.export.workers, spark=spark, progress=progress)
    restricted = open_zone(settings, "restricted")
    opted_out = governance.opted_out_patient_ids(settings)
    plan = unfinished_plan(restricted, request.id, engine, opted_out) or new_plan(
        settings, restricted, request, permission.manifest,
        user=user, engine=engine, workers=options.workers, opted_out=opted_out,
    )
    state = plan.state
    if on_plan:
        on_plan(state.planned_objects)
    governance.append_audit(
        settings, user=user, action="export.resume" if state.resumed else "export.start", request_id=request_id,
        details={"run_id": state.run_id, "objects": state.planned_objects, "batches": state.batches},
    )
    ctx = RunContext.open(settings, request, state, options, user)
    _attempt(ctx, plan)
    return ExportOutcome(state=state)


def _attempt(ctx: RunContext, plan: Plan) -> None:
    """Execute, gate, publish and commit; record how the attempt ended in the run state."""
    state = ctx.state
    started = time.monotonic()
    state.status, state.error = "running", None
    ctx.save()
    try:
        _execute(ctx, plan.batches)
        state.status = "committing"
        ctx.save()
        checkpoint("before_gate")
        with stage("gate"):
            summaries = ctx.summaries()
            state.count(summaries)
            state.gate_report = gate.check_run(ctx, summaries)
        checkpoint("before_publish")
        with stage("publish"):
            commit.publish_objects(ctx)
        checkpoint("before_commit")
        with stage("commit"):
            state.table_versions = commit.commit_tables(ctx, checkpoint)
    except GateFailed as exc:
        state.status, state.error, state.gate_report = "failed", exc.failure, exc.report_key
        _finish(ctx, started)
        commit.discard_staging(ctx)
        raise
    except BaseException as exc:
        # A crash of ours (not a kill): keep the run resumable, record where it stopped.
        state.error = exc.failure if isinstance(exc, ExportStageError) else StageFailure("run", None, reason_of(exc))
        state.seconds += time.monotonic() - started
        ctx.save()
        raise
    state.status = "succeeded"
    _finish(ctx, started)
    commit.discard_staging(ctx)


def _execute(ctx: RunContext, batches: list[list[ManifestEntry]]) -> None:
    """Run the batches not done yet on the engine; the driver gates each one as it lands."""
    worker_settings = engines.share_throttle(ctx.settings, ctx.options.workers)
    tasks = []
    for index, entries in enumerate(batches):
        if ctx.restricted.exists(ctx.layout.marker(index)):
            ctx.options.advance(len(entries))
            continue
        tasks.append(
            BatchTask(
                settings=worker_settings,
                layout=ctx.layout,
                batch=index,
                entries=tuple(entries),
                deid=ctx.deid,
                provenance=ctx.provenance,
            )
        )

    def on_done(result: BatchResult) -> None:
        if isinstance(result, StageFailure):
            raise ExportStageError(result)
        with stage("gate", result.name):
            gate.gate_batch(ctx, result)  # the driver gates while workers go on
        ctx.options.advance(len(batches[result.batch]))
        checkpoint(f"after_batch:{result.batch}")

    if not tasks:
        return
    quality.preload()
    if ctx.options.engine == "spark":
        spark = ctx.options.spark or engines.get_spark()
        with stage("execute"):
            engines.run_spark(tasks, spark, on_done)
    else:
        with stage("execute"):
            engines.run_local(tasks, ctx.options.workers, on_done)


def _finish(ctx: RunContext, started: float) -> None:
    state = ctx.state
    state.seconds = round(state.seconds + time.monotonic() - started, 3)
    state.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    ctx.save()
    failure = {"failed_stage": state.error.stage, "failed_batch": state.error.batch} if state.error else {}
    governance.append_audit(
        ctx.settings, user=ctx.user, action=f"export.{state.status}", request_id=state.request_id,
        details={
            "run_id": state.run_id,
            "exported": state.exported,
            "quarantined": state.quarantined,
            "bytes_written": state.bytes_written,
            "table_versions": state.table_versions,
            "gate_report": state.gate_report,
            **failure,
        },
    )


def export_status(settings: Settings, run_id: str) -> RunState:
    return load_state(open_zone(settings, "restricted"), run_id)


def export_runs(settings: Settings, request_id: str | None = None) -> list[RunState]:
    """Every export run (of one request, or of all), oldest first."""
    return list_runs(open_zone(settings, "restricted"), request_id)
