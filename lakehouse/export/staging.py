"""A run's staging, and what killed or voided runs leave behind.

A run stages de-identified objects under ``research/<project>/_staging/<run_id>/`` and its
rows, batch markers and verdicts under ``restricted/exports/<run_id>/staged/``; both go when
the run ends, however it ends. A killed process cleans nothing, so whoever holds the
project's lease next (an export, at its start and its end, a purge, a revocation, an
export refused because its request was revoked or expired) sweeps the project: active runs
whose request may no longer export are voided, the staging of runs that are not active (or
unknown) is removed, and the temporary files of writes killed midway go.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.export.errors import LeaseHeld, StageFailure
from lakehouse.export.layout import RunLayout, run_id_of_staging_key, staging_root
from lakehouse.export.lease import Lease, acquire
from lakehouse.export.state import VOIDED_STATUSES, RunState, list_runs, save_state
from lakehouse.storage import ObjectStore, open_zone


def discard_staging(restricted: ObjectStore, research: ObjectStore, layout: RunLayout) -> None:
    """Remove a run's staged objects, rows, markers and verdicts (idempotent)."""
    for info in list(research.list(layout.staging_prefix)):
        research.delete(info.key)
    for info in list(restricted.list(layout.staged_prefix)):
        restricted.delete(info.key)


def void_status(request_status: str) -> str:
    """The end status of a run whose request is now ``request_status`` (not approved)."""
    return request_status if request_status in VOIDED_STATUSES else "voided"


def void_run(settings: Settings, lease: Lease, state: RunState, *, status: str, reason: str, user: str) -> None:
    """End an unfinished run without publishing anything more; its staging goes."""
    state.status = status
    state.error = StageFailure("governance", None, reason)
    state.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    lease.ensure()
    restricted = open_zone(settings, "restricted")
    save_state(restricted, state)
    discard_staging(restricted, open_zone(settings, "research"), state.layout)
    governance.append_audit(
        settings, user=user, action=f"export.{status}", request_id=state.request_id,
        # objects a waiting run never could read (archived, not restored): reported, not skipped
        details={"run_id": state.run_id, "reason": reason, **({"unreadable": state.waiting} if state.waiting else {})},
    )


def void_request_runs(settings: Settings, request_id: str, *, user: str) -> bool:
    """Once a request is revoked or expired: end its unfinished runs and remove their staging,
    unless another process holds the project's lease now (a run of the request re-checks it
    itself; any other holder sweeps the project when it ends). True when it was done here."""
    project = governance.get_request(settings, request_id).project
    try:
        lease = acquire(
            open_zone(settings, "restricted"), project, user=user, purpose=f"sweep after {request_id}",
            term=settings.export.lease_seconds,
        )
    except LeaseHeld:
        return False
    with lease:
        sweep_project(settings, lease, user=user)
    return True


def sweep_project(settings: Settings, lease: Lease, *, user: str) -> None:
    """Void the project's runs that may no longer publish and remove what ended runs left."""
    restricted = open_zone(settings, "restricted")
    research = open_zone(settings, "research")
    runs = [run for run in list_runs(restricted) if run.project == lease.project]
    statuses: dict[str, str] = {}
    for run in runs:
        if not run.active:
            continue
        if run.request_id not in statuses:
            statuses[run.request_id] = governance.get_request(settings, run.request_id).status
        if statuses[run.request_id] != "approved":
            status = void_status(statuses[run.request_id])
            void_run(settings, lease, run, status=status, reason=f"request {run.request_id} is {status}", user=user)
    active = {run.run_id for run in runs if run.active}
    lease.ensure()
    for info in list(research.list(staging_root(lease.project))):
        if run_id_of_staging_key(info.key) not in active:
            research.delete(info.key)
    research.remove_temporary(staging_root(lease.project))
    for run in runs:
        if not run.active:
            for info in list(restricted.list(run.layout.staged_prefix)):
                restricted.delete(info.key)
        restricted.remove_temporary(f"{run.layout.prefix}/")
