"""Actions that span stages, as library functions the CLI, the demo and jobs call.

A stage package may not import the stages beside it (``catalog`` does not import
``governance``; ``governance`` does not import ``export``), so an action that needs two
of them is composed here, once: an audited catalog sync, and revoking a request with
the purge of what it exported. No stage imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lakehouse import governance
from lakehouse.catalog import SyncResult, sync_catalog
from lakehouse.config import Settings
from lakehouse.export import PurgeResult, export_runs, purge_request, void_request_runs


def sync_catalog_audited(
    settings: Settings, *, user: str, progress: Callable[[int], None] | None = None
) -> SyncResult:
    """Bring the catalog up to date, then record the sync (counts only) in the audit chain."""
    result = sync_catalog(settings, progress=progress)
    governance.append_audit(settings, user=user, action="catalog.sync", details=result.to_dict())
    return result


@dataclass(frozen=True)
class Revocation:
    request: governance.Request
    purge: PurgeResult | None  # None: the exported data stays, only later runs are refused

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.request.id, "status": self.request.status}
        if self.purge is not None:
            data["purge"] = self.purge.to_dict()
        return data


def revoke_request(
    settings: Settings, request_id: str, *, user: str, reason: str, purge: bool = False
) -> Revocation:
    """Revoke a request; with ``purge`` also delete what it exported (rows, objects).
    Either way its unfinished export runs end and their staging goes (a run in progress
    sees the revocation itself and publishes nothing).

    A purge needs the admins role, checked before the revocation so a refused purge
    changes nothing."""
    if purge:
        governance.require_role(settings, user, "admins")
    request = governance.revoke(settings, request_id, user=user, reason=reason)
    if not purge:
        void_request_runs(settings, request_id, user=user)
        return Revocation(request, None)
    return Revocation(request, purge_request(settings, request_id, user=user))


def verify_audit_trail(settings: Settings, *, expect_head: str | None = None) -> governance.AuditVerification:
    """Verify the audit chain and every head recorded outside it: by decisions (governance reads
    those itself) and by export runs (their state), so a cut tail is found if anything saw it."""
    checkpoints = [
        governance.Checkpoint(f"export run {run.run_id}", run.audit_head)
        for run in export_runs(settings)
        if run.audit_head
    ]
    return governance.verify_audit(settings, expect_head=expect_head, checkpoints=checkpoints)
