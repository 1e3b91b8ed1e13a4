"""Actions that span stages, as library functions the CLI, the demo and jobs call.

A stage package may not import the stages beside it (``catalog`` does not import
``governance``; ``governance`` does not import ``export``), so an action that needs two
of them is composed here, once: an audited catalog sync, revoking a request with the
purge of what it exported, purges that reach the datasets built from the research
zone, and annotation imports (whose annotator ids are the project's keyed pseudonyms). No
stage imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import governance
from lakehouse.catalog import SyncResult, sync_catalog
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError

if TYPE_CHECKING:  # the other stages load in the actions that use them: a catalog sync needs none
    from lakehouse import datasets
    from lakehouse.export import PurgeResult
    from lakehouse.lake.registration import Registration

_ANNOTATOR_ID = re.compile(r"^ann-[a-z2-7]{16}$")  # ours already (a SEG of ours imported again)


def sync_catalog_audited(
    settings: Settings, *, user: str, progress: Callable[[int], None] | None = None
) -> SyncResult:
    """Bring the catalog up to date, then record the sync (counts only) in the audit chain."""
    result = sync_catalog(settings, progress=progress)
    governance.append_audit(settings, user=user, action="catalog.sync", details=result.to_dict())
    return result


@dataclass(frozen=True)
class Purge:
    """A purge of research data and the dataset versions it reached (withdrawn, files removed)."""

    research: PurgeResult
    withdrawn: list[datasets.Version]

    def to_dict(self) -> dict[str, Any]:
        return {**self.research.to_dict(), "datasets_withdrawn": [f"{v.project}/{v.ref}" for v in self.withdrawn]}


@dataclass(frozen=True)
class Revocation:
    request: governance.Request
    purge: Purge | None  # None: the exported data stays, only later runs are refused

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.request.id, "status": self.request.status}
        if self.purge is not None:
            data["purge"] = self.purge.to_dict()
        return data


def purge_opted_out_patient(settings: Settings, patient_id: str, *, user: str, reason: str = "opt-out purge") -> Purge:
    """``optout purge``: the patient's research data in every project, then every dataset
    version holding any of it or the patient's pseudonym, and the patient's split rows."""
    from lakehouse import datasets
    from lakehouse.export import purge_patient

    result = purge_patient(settings, patient_id, user=user, reason=reason)
    withdrawn = []
    for project in sorted(set(result.sops) | set(result.pseudo_patients)):
        pseudo = result.pseudo_patients.get(project)
        withdrawn += datasets.withdraw_purged(
            settings, project, user=user, reason="opt-out purge",
            sops=result.sops.get(project, set()), patients={pseudo} if pseudo else set(),
        )
    return Purge(result, withdrawn)


def revoke_request(
    settings: Settings, request_id: str, *, user: str, reason: str, purge: bool = False
) -> Revocation:
    """Revoke a request; with ``purge`` also delete what it exported (rows, objects).
    Either way its unfinished export runs end and their staging goes (a run in progress
    sees the revocation itself and publishes nothing).

    A purge needs the admins role, checked before the revocation so a refused purge
    changes nothing."""
    from lakehouse import datasets
    from lakehouse.export import purge_request, void_request_runs

    if purge:
        governance.require_role(settings, user, "admins")
    request = governance.revoke(settings, request_id, user=user, reason=reason)
    if not purge:
        void_request_runs(settings, request_id, user=user)
        return Revocation(request, None)
    result = purge_request(settings, request_id, user=user)
    withdrawn = datasets.withdraw_purged(
        settings, request.project, user=user, reason=f"request {request_id} revoked and purged",
        sops=result.sops.get(request.project, set()), request_id=request_id,
    )
    return Revocation(request, Purge(result, withdrawn))


def verify_audit_trail(settings: Settings, *, expect_head: str | None = None) -> governance.AuditVerification:
    """Verify the audit chain and every head recorded outside it: by decisions (governance reads
    those itself) and by export runs (their state), so a cut tail is found if anything saw it."""
    from lakehouse import datasets
    from lakehouse.export import export_runs

    checkpoints = [
        governance.Checkpoint(f"export run {run.run_id}", run.audit_head)
        for run in export_runs(settings)
        if run.audit_head
    ]
    checkpoints += [
        governance.Checkpoint(f"dataset {v.project}/{v.ref}", v.details["audit_head"]["hash"])
        for project in datasets.projects(settings)
        for v in datasets.list_versions(settings, project)
        if v.details.get("audit_head")
    ]
    return governance.verify_audit(settings, expect_head=expect_head, checkpoints=checkpoints)


def import_annotations(
    settings: Settings, project: str, name: str, version: int, source: Path, *, kind: str, user: str,
    round_: str = "r1", label_map_text: str | None = None, annotator: str | None = None, status: str = "final",
) -> datasets.ImportResult:
    """``dataset annotations import``: the annotator's name becomes the project's keyed pseudonym."""
    from lakehouse import datasets
    from lakehouse.deid import pseudonymize_id
    from lakehouse.export.keys import load_project_key

    key = load_project_key(settings, project)
    return datasets.import_annotations(
        settings, project, name, version, source, kind=kind, user=user, round_=round_,
        label_map_text=label_map_text, annotator=annotator, status=status,
        pseudonym=lambda person: person if _ANNOTATOR_ID.match(person) else (
            "ann-" + pseudonymize_id(person, key, "annotator").lower()),
    )


def register_tables(
    settings: Settings, project: str, *, user: str, catalog: str = "glue", database: str | None = None
) -> list[Registration]:
    """``tables register``: the project's research and datasets tables in a catalog (operators
    and admins), each registration recorded in the audit chain as it lands."""
    from lakehouse.lake.registration import CATALOGS, register_glue

    governance.require_role(settings, user, "operators", "admins")
    if catalog not in CATALOGS:
        raise LakehouseError(f"unknown catalog {catalog!r}; choose one of {', '.join(CATALOGS)}")

    def audit(done: Registration) -> None:
        governance.append_audit(
            settings, user=user, action="tables.register",
            details={"project": project, "catalog": catalog, **done.to_dict()},
        )

    return register_glue(settings, project, database=database, on_registered=audit)
