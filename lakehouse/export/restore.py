"""Restores of archived objects: a governed step an operator takes, knowing its cost first.

Objects in Glacier Flexible Retrieval or Deep Archive cannot be read with a GET; S3 makes
a temporary readable copy of each on a ``RestoreObject`` request. Only an operator asks for
them (``lakehouse export restore``), for an approved, unexpired request whose manifest and
decisions prove out (``governance.may_run``, checked before anything reaches the archive and
again right before the requests); a refused request sends no restore. The tier comes from
``[storage_tiers] restore_tier`` (bulk by default: cheapest, slowest); the copies stay readable through
the approval's last valid day. ``plan_restore`` reads only the catalog and the run's plan
(what it will cost, before anyone agrees); ``request_restores`` HEADs each object and asks
only for those not restored and not being restored (or whose restored copy would go before the
approval ends: asking again extends it), so running it again costs nothing twice.
A run that found archived objects waits (``waiting_for_restore``); `export run` resumes it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import governance, lake
from lakehouse.config import Settings
from lakehouse.errors import ObjectNotFound, Refused, StorageError
from lakehouse.export.plan import archived_keys, exported_sops, unfinished_plan
from lakehouse.governance.cost import CostReview, cost_review, restore_days
from lakehouse.storage import open_restorer, open_zone
from lakehouse.storage.tiers import needs_restore, readability, restored_until, tier_of

if TYPE_CHECKING:
    from lakehouse.storage.s3 import ArchiveRestorer


@dataclass(frozen=True)
class RestorePlan:
    """What an operator is asked to agree to: how many archived objects, at which tier, for how
    many days, and what it costs. ``keys`` are source keys (identified): never printed."""

    request_id: str
    tier: str
    days: int
    until: date  # the approval's last valid day: every copy must stay readable through it
    objects: int
    bytes: int
    cost: CostReview
    keys: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["keys"]
        return data


@dataclass(frozen=True)
class RestoreResult:
    """What ``request_restores`` did, object by object, in counts."""

    requested: int = 0
    extended: int = 0  # restored copies that would have gone before the approval ends: asked again
    already_restored: int = 0
    in_progress: int = 0
    readable: int = 0  # not (or no longer) in an archive tier: a GET reads it
    missing: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason code → objects

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_restore(settings: Settings, request_id: str, *, user: str, now: datetime | None = None) -> RestorePlan:
    """The restores the request's export needs (nothing reaches the archive here). Refused
    unless ``user`` is an operator and the request may be exported now."""
    request, entries = _allowed(settings, request_id, user=user, now=now)
    archived = archived_keys(settings)
    keys = sorted({e.key for e in entries if e.key in archived})
    catalog = lake.table(settings, "catalog").read(
        columns=["key", "storage_class", "size"], filters=[("deleted", "=", False)]
    )
    chosen = catalog.filter(pc.is_in(catalog["key"], pa.array(keys, pa.string())))
    today = (now or datetime.now(UTC)).date()
    days = restore_days(request.expires, today, settings.policy.max_validity_days)
    cost = cost_review(settings, chosen, days=days, suppress=lambda counts: [str(n) for n in counts])
    tier = settings.storage_tiers.restore_tier
    if cost.tier_not_offered:
        offered = ", ".join(cost.tier_not_offered)
        raise Refused(f"restore tier {tier} is not offered for {offered}; choose another in [storage_tiers] restore_tier")
    size = int(pc.sum(chosen["size"]).as_py() or 0) if chosen.num_rows else 0
    until = request.expires or today + timedelta(days=days - 1)
    return RestorePlan(request_id, tier, days, until, len(keys), size, cost, tuple(keys))


def request_restores(
    settings: Settings, plan: RestorePlan, *, user: str, now: datetime | None = None
) -> RestoreResult:
    """Ask S3 to restore the planned objects that are neither restored nor being restored.
    The request is checked again first; the counts (never keys) go to the audit chain."""
    _allowed(settings, plan.request_id, user=user, now=now)
    restorer = open_restorer(settings)  # None: a local archive, all of it readable
    counts, failed = _restore_each(restorer, plan) if restorer is not None else (Counter(), Counter())
    result = RestoreResult(
        requested=counts["requested"],
        extended=counts["extended"],
        already_restored=counts["already_restored"],
        in_progress=counts["in_progress"],
        readable=counts["readable"],
        missing=counts["missing"],
        failed=dict(sorted(failed.items())),
    )
    governance.append_audit(
        settings, user=user, action="export.restore", request_id=plan.request_id,
        details={"tier": plan.tier, "days": plan.days, "objects": plan.objects, "bytes": plan.bytes,
                 "estimated_cost": plan.cost.total, "currency": plan.cost.currency, **result.to_dict()},
    )
    return result


def _restore_each(restorer: ArchiveRestorer, plan: RestorePlan) -> tuple[Counter[str], Counter[str]]:
    """HEAD each planned object; restore those neither restored nor being restored."""
    counts: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for key in plan.keys:
        try:
            info = restorer.head(key)
            state = readability(info)
            if state == "restore_not_requested":
                restorer.restore(key, days=plan.days, tier=plan.tier)
                counts["requested"] += 1
            elif state == "restore_in_progress":
                counts["in_progress"] += 1
            elif not needs_restore(tier_of(info.storage_class)):
                counts["readable"] += 1  # the object left the archive tier meanwhile
            elif (until := restored_until(info)) is not None and until.date() <= plan.until:
                restorer.restore(key, days=plan.days, tier=plan.tier)  # S3 extends the copy's expiry
                counts["extended"] += 1
            else:
                counts["already_restored"] += 1
        except ObjectNotFound:
            counts["missing"] += 1
        except StorageError as exc:  # counted by kind: the message names the key
            failed[type(exc).__name__] += 1
    return counts, failed


def _allowed(
    settings: Settings, request_id: str, *, user: str, now: datetime | None
) -> tuple[governance.Request, list[governance.ManifestEntry]]:
    """The request and the entries its export reads (the unfinished run's plan, else the manifest
    less opted-out patients and what the project holds), or Refused (audited) before any request
    reaches the archive."""
    governance.require_role(settings, user, "operators")
    permission = governance.may_run(settings, request_id, now=now)
    if not permission.allowed or permission.request is None:
        reason = f"request {request_id} may not be restored for export: {permission.reason}"
        governance.append_audit(
            settings, user=user, action="export.restore_refused", request_id=request_id, details={"reason": reason}
        )
        raise Refused(reason)
    request = permission.request
    plan = unfinished_plan(open_zone(settings, "restricted"), request_id, engine="")
    if plan is not None:
        return request, [entry for batch in plan.batches for entry in batch]
    opted_out = governance.opted_out_patient_ids(settings)
    exported = exported_sops(settings, request.project)
    return request, [
        e for e in permission.manifest if e.patient_id not in opted_out and e.sop_instance_uid not in exported
    ]
