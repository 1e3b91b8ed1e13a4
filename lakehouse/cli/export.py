"""`lakehouse export run|status`."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli._common import ConfigOpt, JsonOpt, UserOpt, emit, progress, require_user, settings_from

app = typer.Typer(
    help="Export an approved request: de-identified objects and Delta tables in the research zone.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    request_id: Annotated[str, typer.Argument(help="The approved request to export.")],
    engine: Annotated[str, typer.Option(help="local (process pool, no JVM) or spark.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: workers in the export section of the config).")] = None,
    config: ConfigOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export REQUEST_ID (operators only). Refused before any archive read unless the request is
    approved, unexpired, unrevoked and its manifest intact. An interrupted run resumes."""
    from lakehouse.export import run_export

    settings = settings_from(config)
    total: dict[str, int] = {}
    with progress("exporting", None, enabled=not as_json) as advance:
        outcome = run_export(
            settings,
            request_id,
            user=require_user(user),
            engine=engine,
            workers=workers,
            progress=advance,
            on_plan=lambda n: total.update(planned=n),
        )
    state = outcome.state
    quarantined = ", ".join(f"{k} {v}" for k, v in state.quarantined.items()) or "none"
    emit(
        outcome.to_dict(),
        as_json,
        [
            f"run {state.run_id}: {state.status}{' (resumed)' if outcome.resumed else ''}",
            f"exported {state.exported} objects, quarantined: {quarantined}",
            (
                f"skipped: {state.skipped_already_exported} already exported, "
                f"{state.skipped_other_profile} exported under other options, "
                f"{state.skipped_duplicate_sop_instance} duplicate SOP instances, {state.skipped_opted_out} opted out"
            ),
            f"{state.bytes_written / 1e6:.1f} MB written, {state.to_dict()['objects_per_second']} objects/s",
            "table versions: " + ", ".join(f"{k}={v}" for k, v in state.table_versions.items()),
        ],
    )


@app.command("status")
def status(
    run_id: Annotated[str, typer.Argument(help="Run id printed by `export run`.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an export run's state, counts and table versions."""
    from lakehouse.export import export_status

    state = export_status(settings_from(config), run_id)
    emit(state.to_dict(), as_json)
