"""`lakehouse export run|status|list`.

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
    plain,
    progress,
    settings_from,
    timestamp,
)

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
    config: ConfigOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export REQUEST_ID (operators only). Refused before any archive read unless the request is
    approved, unexpired, unrevoked and its manifest intact, and while another process writes the
    project (named, with since when). An interrupted run resumes."""
    from lakehouse.export import run_export

    settings = settings_from(config)
    with progress("exporting", None, enabled=not as_json) as advance:
        outcome = run_export(
            settings, request_id, user=acting(settings, user).name, engine=engine, workers=workers, progress=advance
        )
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
    return f"{line}  (failed at {state.error.describe()})" if state.error else line


def _time(value: str | None) -> str:
    """A stored timestamp as the CLI shows times (ISO 8601, UTC)."""
    return timestamp(datetime.fromisoformat(value)) if value else "-"
