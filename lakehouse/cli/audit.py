"""`lakehouse audit` commands."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse import governance
from lakehouse.cli._common import ConfigOpt, JsonOpt, emit, settings_from
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
    """Recompute the hash chain; exits 4 and names the first broken link when it does not hold."""
    result = governance.verify_audit(settings_from(config), expect_head=expect_head)
    text = f"audit chain ok: {result.events} events, head {result.head_hash}"
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
