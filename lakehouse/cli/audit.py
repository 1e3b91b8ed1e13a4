"""`lakehouse audit` commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from lakehouse import governance
from lakehouse.cli._common import ConfigOpt, JsonOpt, emit, plain, settings_from, timestamp
from lakehouse.errors import AuditChainBroken

app = typer.Typer(
    help="Tamper-evident audit chain of every governed command (who, when, what; counts and hashes only).",
    no_args_is_help=True,
)


@app.command()
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head", help="A head hash noted earlier elsewhere; it must still be in the chain."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain and check it against every head recorded outside it (decisions,
    export runs); exits 4 and names the first broken link when it does not hold."""
    from lakehouse.workflows import verify_audit_trail

    result = verify_audit_trail(settings_from(config), expect_head=expect_head)
    text = (
        f"audit chain ok: {result.events} events, head {result.head_hash}, "
        f"{result.checkpoints} checkpoints hold"
    )
    if result.first_broken is not None:
        link = result.first_broken
        text = f"audit chain broken at event {link.index} ({link.event_id or 'n/a'}): {link.problem}"
    if result.ok:
        emit(result.to_dict(), as_json, text)
        return
    if not as_json:
        emit(result.to_dict(), as_json, text)
    broken = AuditChainBroken(text)
    broken.details = result.to_dict()  # with --json, the one error object carries the verification
    raise broken


@app.command("list")
def list_events(
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            help="Only events from this day or time (UTC) on.",
        ),
    ] = None,
    request_id: Annotated[str | None, typer.Option("--request", help="Only events of this request.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The chain's events in order: who, when, what, with their counts, hashes and codes (never PHI)."""
    start = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    events = governance.list_audit(settings_from(config), since=start, request_id=request_id)
    lines = [
        f"{e.seq:>6}  {timestamp(e.at)}  {e.user}  {e.action}  {e.request_id or '-'}  "
        f"{e.hash[:16]}{'  signed' if e.signed else ''}  {plain(e.details)}"
        for e in events
    ]
    emit({"events": [e.to_dict() for e in events]}, as_json, lines or ["no audit events"])
