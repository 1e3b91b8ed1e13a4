"""`lakehouse optout` commands: the opt-out registry (admins only)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse import governance
from lakehouse.cli._common import ConfigOpt, JsonOpt, UserOpt, acting, emit, settings_from, timestamp

app = typer.Typer(
    help="Opt-out registry: patients never frozen into a manifest and re-checked by every export. "
    "Admins only; Patient IDs are shown to admins and never written to the audit chain.",
    no_args_is_help=True,
)


@app.command()
def add(
    patient_id: Annotated[
        str, typer.Option("--patient-id", help="(0010,0020) Patient ID as in the catalog.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. reference of the patient's letter).")],
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an opt-out (idempotent)."""
    settings = settings_from(config)
    governance.add_optout(settings, user=acting(settings, user).name, patient_id=patient_id, reason=reason)
    emit({"registered": True}, as_json, "opt-out registered")


@app.command("list")
def list_(user: UserOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the registry (shows Patient IDs; admins only)."""
    settings = settings_from(config)
    entries = governance.list_optouts(settings, user=acting(settings, user).name)
    rows = [{"patient_id": o.patient_id, "reason": o.reason, "user": o.user, "at": o.at} for o in entries]
    text = [f"{o.patient_id}  {timestamp(o.at)}  by {o.user}: {o.reason}" for o in entries] or ["no opt-outs"]
    emit({"optouts": rows}, as_json, text)


@app.command()
def purge(
    patient_id: Annotated[
        str, typer.Option("--patient-id", help="(0010,0020) Patient ID as in the catalog.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why, if the patient is not registered yet.")] = "opt-out purge",
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete the patient's exported rows and objects from every project (Delta delete + vacuum),
    withdraw every dataset version that holds any of them, register the opt-out if needed, and
    audit it. Later exports and dataset builds exclude the patient."""
    from lakehouse.workflows import purge_opted_out_patient

    settings = settings_from(config)
    purge = purge_opted_out_patient(settings, patient_id, user=acting(settings, user).name, reason=reason)
    result = purge.research
    emit(
        purge.to_dict(),
        as_json,
        f"purged {result.instances} instances and {result.objects} objects from {len(result.projects)} projects; "
        f"withdrew {len(purge.withdrawn)} dataset versions",
    )
