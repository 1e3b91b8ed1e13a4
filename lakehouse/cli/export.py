"""`lakehouse export run|status|list|restore`.

``run --json``, ``status --json`` and each entry of ``list --json`` are the same object
(``RunState.to_dict``); the text forms come from ``_run_lines`` and ``_run_line``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.cli._common import (
    ConfigOpt,
    JsonOpt,
    UserOpt,
    acting,
    emit,
    interactive,
    plain,
    settings_from,
    show_on_stderr,
    timestamp,
)
from lakehouse.cli._progress import run_progress
from lakehouse.cli._tiers import restore_lines, waiting_lines

if TYPE_CHECKING:
    from lakehouse.export import RunState

app = typer.Typer(
    help="Export an approved request: de-identified objects and Delta tables in the research zone.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    request_id: Annotated[str, typer.Argument(help="The approved request to export.")],
    engine: Annotated[str | None, typer.Option(help="local (process pool, no JVM) or spark (default: engine in the export section of the config).")] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: workers in the export section of the config).")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL for --engine spark (default: spark.master of spark-defaults.conf, else $MASTER, else local[*]).")] = None,
    config: ConfigOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export REQUEST_ID (operators only). Refused before any archive read unless the request is
    approved, unexpired, unrevoked and its manifest intact, and while another process writes the
    project (named, with since when). An interrupted run resumes. On a terminal a bar shows the
    objects done of the planned total, the rate and the time left; otherwise the same figures
    are logged every `progress_log_seconds` of the export section."""
    from lakehouse.export import run_export
    from lakehouse.export.engines import get_spark

    settings = settings_from(config)
    if master and (engine or settings.export.engine) != "spark":
        raise typer.BadParameter("--master is for --engine spark", param_hint="--master")
    operator = acting(settings, user).name
    spark = get_spark(master=master) if master else None
    try:
        with run_progress("exporting", bar=not as_json, log_every=settings.export.progress_log_seconds) as shown:
            outcome = run_export(
                settings, request_id, user=operator, engine=engine, workers=workers, spark=spark,
                progress=shown.advance, on_plan=shown.plan,
            )
    finally:
        if spark is not None:
            spark.stop()
    emit(outcome.to_dict(), as_json, _run_lines(outcome.state))


@app.command("status")
def status(
    run_id: Annotated[str, typer.Argument(help="Run id printed by `export run`.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an export run's state, counts, table versions and, if it failed, where."""
    from lakehouse.export import export_status

    state = export_status(settings_from(config), run_id)
    emit(state.to_dict(), as_json, _run_lines(state))


@app.command("list")
def list_(
    request_id: Annotated[str | None, typer.Option("--request", help="Only the runs of this request.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List export runs, oldest first, with their status and counts."""
    from lakehouse.export import export_runs

    states = export_runs(settings_from(config), request_id)
    emit({"runs": [s.to_dict() for s in states]}, as_json, [_run_line(s) for s in states] or ["no export runs"])


@app.command("restore")
def restore(
    request_id: Annotated[str, typer.Argument(help="The approved request whose archived objects to restore.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Request the restores without asking (without a terminal, nothing is requested without it).")
    ] = False,
    config: ConfigOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the request's objects in archive tiers (Glacier Flexible Retrieval, Deep Archive) so
    its export can read them (operators only). Shows the expected cost first; a terminal asks unless
    --yes, and without a terminal nothing is requested unless --yes. The tier comes from the storage_tiers
    section of the config (bulk by default); the copies stay readable through the approval's last
    day. Refused, with no request to the archive, unless the request may be exported now."""
    from lakehouse.export import plan_restore, request_restores

    settings = settings_from(config)
    name = acting(settings, user).name
    plan = plan_restore(settings, request_id, user=name)
    lines = restore_lines(plan)
    data = {"plan": plan.to_dict(), "requested": False, "result": None}
    if not plan.objects:
        emit(data, as_json, [*lines, "nothing to restore"])
        return
    if not yes:
        if not interactive():
            emit(data, as_json, [*lines, f"nothing requested: add --yes to request {plan.objects} restores"])
            return
        show_on_stderr(lines)
        question = (
            f"Request {plan.objects} restores at tier {plan.tier} for about "
            f"{plan.cost.total:.2f} {plan.cost.currency} as {name}?"
        )
        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()
        lines = []
    result = request_restores(settings, plan, user=name)
    done = (
        f"requested {result.requested} restores, extended {result.extended}; {result.already_restored} already restored, "
        f"{result.in_progress} in progress, {result.readable} readable without one, {result.missing} missing, "
        f"failed: {plain(result.failed)}; `lakehouse export run {request_id}` reads them once restored"
    )
    emit({**data, "requested": True, "result": result.to_dict()}, as_json, [*lines, done])


def _run_lines(state: RunState) -> list[str]:
    lines = [
        f"run {state.run_id}: {state.status}{' (resumed)' if state.resumed else ''}",
        f"request {state.request_id}, project {state.project}, engine {state.engine}, by {state.user}",
        f"started {_time(state.started_at)}, finished {_time(state.finished_at)}",
        (
            f"exported {state.exported} of {state.planned_objects} objects in {state.batches} "
            f"batch{'' if state.batches == 1 else 'es'}, "
            f"quarantined: {plain(state.quarantined) if state.quarantined else 'none'}"
        ),
        (
            f"skipped: {state.skipped_already_exported} already exported, "
            f"{state.skipped_other_profile} exported under other options, "
            f"{state.skipped_duplicate_sop_instance} duplicate SOP instances, {state.skipped_opted_out} opted out"
            + (f"; withheld: {state.withheld_opted_out} opted out during the run" if state.withheld_opted_out else "")
        ),
        f"{state.bytes_written / 1e6:.1f} MB written, {plain(state.to_dict()['objects_per_second'])} objects/s",
        "table versions: " + (", ".join(f"{k}={plain(v)}" for k, v in state.table_versions.items()) or "-"),
    ]
    if state.risk:
        from lakehouse.governance.cohort import risk_line

        lines.append(f"k-anonymity: {risk_line(state.risk)}")
    lines += waiting_lines(state)
    if state.gate_report:
        lines.append(f"gate report: {state.gate_report}")
    if state.error:
        lines.append(f"failed at {state.error.describe()}")
    return lines


def _run_line(state: RunState) -> str:
    line = (
        f"{state.run_id}  {state.status:<10}  {state.request_id}  {_time(state.started_at)}  "
        f"exported {state.exported}, quarantined {sum(state.quarantined.values())}"
    )
    if state.waiting:
        line += f", unreadable until restored {sum(state.waiting.values())}"
    return f"{line}  (failed at {state.error.describe()})" if state.error else line


def _time(value: str | None) -> str:
    """A stored timestamp as the CLI shows times (ISO 8601, UTC)."""
    return timestamp(datetime.fromisoformat(value)) if value else "-"
