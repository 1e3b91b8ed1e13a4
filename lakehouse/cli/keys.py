"""`lakehouse keys`: the identity the tool sees and the allowed_signers line to add for it."""

from __future__ import annotations

import typer

from lakehouse.cli._common import ConfigOpt, JsonOpt, UserOpt, acting, emit, settings_from


def register(app: typer.Typer) -> None:
    app.command("keys")(keys)


def keys(user: UserOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show who the tool sees you as (identity mode and name), your roles, whether your signing
    key is configured and usable, and the line a governance admin adds to [policy] allowed_signers
    so your approvals, rejections and revocations verify. Exits 0: it diagnoses, it never refuses."""
    from lakehouse.governance.keys import key_status

    settings = settings_from(config)
    status = key_status(settings, acting(settings, user))
    emit(status.to_dict(), as_json, status.lines())
