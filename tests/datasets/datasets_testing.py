"""Helpers of the dataset tests: a project exported from a synthetic archive."""

from __future__ import annotations

from datetime import date, timedelta

from lakehouse.config import Settings

PROJECT = "lung-ai"
ROLES = {
    "requesters": ["alice"], "approvers": ["bob"], "operators": ["olga"], "admins": ["root"],
    "curators": ["cora"], "labelers": ["leo"],
}


def export_request(settings: Settings, *, project: str = PROJECT, cohort: dict | None = None,
                   options: tuple[str, ...] = ("retain-modified-dates", "clean-descriptors")) -> str:
    """Catalog, submit as alice, approve as bob, export as olga; returns the request id."""
    from lakehouse import governance
    from lakehouse.catalog import sync_catalog
    from lakehouse.export import run_export

    sync_catalog(settings)
    request = governance.submit_request(
        settings, user="alice", project=project, title="Nodules", purpose="Label nodules",
        protocol="IRB-2026-042", cohort=cohort or {}, options=list(options),
    )
    governance.approve(settings, request.id, user="bob", expires=date.today() + timedelta(days=30))
    run_export(settings, request.id, user="olga")
    return request.id
