"""`lakehouse catalog` commands."""

from __future__ import annotations

import typer

from lakehouse.cli._common import ConfigOpt, JsonOpt, UserOpt, acting, emit, progress, settings_from
from lakehouse.config import Settings
from lakehouse.governance.identity import os_login

app = typer.Typer(help="The identified archive catalog (restricted zone).", no_args_is_help=True)


@app.command("sync")
def sync(config: ConfigOpt = None, user: UserOpt = None, as_json: JsonOpt = False) -> None:
    """Scan the archive incrementally (headers only) into the catalog table.

    Objects that cannot be parsed get a row with a reason code; the sync still exits 0.
    The sync is audited (counts only) as the acting identity (see [identity] mode)."""
    from lakehouse.workflows import sync_catalog_audited

    settings = settings_from(config)
    with progress("cataloging", total=None, enabled=not as_json) as advance:
        result = sync_catalog_audited(settings, user=_auditor(settings, user), progress=advance)
    lines = [f"catalog sync: {result.summary_line()}"]
    if result.failed:
        reasons = ", ".join(f"{code} {n}" for code, n in result.failure_reasons.items())
        lines.append(
            f"{result.failed} objects could not be cataloged ({reasons}); see parse_status in the catalog"
        )
    emit(result.to_dict(), as_json, lines)


@app.command("stats")
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Patients, studies, series, instances, bytes, and counts per modality and parse status."""
    from lakehouse.catalog import catalog_stats

    data = catalog_stats(settings_from(config))
    lines = [
        f"{name}: {data[name]}" for name in ("objects", "patients", "studies", "series", "instances", "bytes")
    ]
    lines.append("per modality: " + ", ".join(f"{k} {v}" for k, v in sorted(data["per_modality"].items())))
    lines.append(
        "per parse status: " + ", ".join(f"{k} {v}" for k, v in sorted(data["per_parse_status"].items()))
    )
    lines.append(
        f"duplicate objects: {data['duplicate_objects']}, deleted (tombstoned): {data['deleted_objects']}"
    )
    emit(data, as_json, lines)


def _auditor(settings: Settings, user: str | None) -> str:
    """Who the sync is audited as: the acting identity, or in asserted mode with no name
    typed the OS login (a sync decides nothing, so it needs no typed name)."""
    if user is None and settings.identity.mode == "asserted":
        return os_login()
    return acting(settings, user).name
