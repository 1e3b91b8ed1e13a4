"""Opt-out registry (restricted/governance/optouts): patients never frozen into a manifest.

Managed and listed by admins only; Patient IDs never reach the audit chain
(only registry sizes do).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow.compute as pc

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import Refused
from lakehouse.governance.audit import append_audit
from lakehouse.governance.roles import require_role


@dataclass(frozen=True)
class OptOut:
    patient_id: str
    reason: str
    user: str
    at: datetime


def opted_out_patient_ids(settings: Settings) -> set[str]:
    """Every opted-out Patient ID (for freezing manifests and run-time re-checks)."""
    table = lake.table(settings, "optouts").read(columns=["patient_id"])
    return {str(p) for p in pc.unique(table["patient_id"]).to_pylist()}


def add_optout(
    settings: Settings, *, user: str, patient_id: str, reason: str, now: datetime | None = None
) -> None:
    require_role(settings, user, "admins")
    if not patient_id.strip() or len(patient_id) > 64 or "\n" in patient_id:
        raise Refused("patient id must be 1-64 characters on one line")
    if not reason.strip():
        raise Refused("an opt-out needs a reason")
    optouts = lake.table(settings, "optouts")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    already = patient_id in opted_out_patient_ids(settings)
    if not already:
        row = {"patient_id": patient_id, "reason": reason, "user": user, "at": at}
        optouts.append(optouts.spec.to_arrow([row]))
    details = {"already_registered": already, "registry_size": len(opted_out_patient_ids(settings))}
    append_audit(settings, user=user, action="optout.add", details=details, now=now)


def list_optouts(settings: Settings, *, user: str) -> list[OptOut]:
    """The registry (first record per patient), for admins only; audited."""
    require_role(settings, user, "admins")
    rows = lake.table(settings, "optouts").read().sort_by([("at", "ascending")]).to_pylist()
    seen: dict[str, OptOut] = {}
    for r in rows:
        seen.setdefault(r["patient_id"], OptOut(r["patient_id"], r["reason"], r["user"], r["at"]))
    append_audit(settings, user=user, action="optout.list", details={"count": len(seen)})
    return list(seen.values())
