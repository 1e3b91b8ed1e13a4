"""The proof an export checks before its first archive read: recomputed, never trusted.

Anyone who can write the restricted zone can append rows to ``governance_events`` and the
manifests table. So before an export reads anything, every effective decision of the request
is checked again from the governed config alone:

- the identity mode it records is the configured one;
- its signature verifies against an ``allowed_signers`` key of the decider valid at the
  decision's time, and the decider holds the role the decision needs in ``[roles]`` now;
- the distinct signing approvers reach ``[policy] approvals_required`` (the policy now, not
  the quorum a row claims), none of them is the requester, and no expiry is past or beyond
  ``max_validity_days``;
- the frozen manifest is what the cohort selects from the catalog version recorded at
  approval (Delta time travel), less only objects of patients who opted out.

The first failure is a one-line ``Refused`` (names, counts and versions, never PHI).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import LakeError, Refused
from lakehouse.governance import cohort as cohorts
from lakehouse.governance.audit import canonical
from lakehouse.governance.manifest import ManifestEntry, entries_from
from lakehouse.governance.optout import opted_out_patient_ids
from lakehouse.governance.roles import roles_of
from lakehouse.governance.signing import decision_payload, signatures_required, verify_decision

if TYPE_CHECKING:
    from lakehouse.governance.requests import Request

DECISIONS = ("approve", "reject", "revoke")
_ROLES_FOR = {"approve": ("approvers",), "reject": ("approvers", "admins"), "revoke": ("approvers", "admins")}


def verify_approval(settings: Settings, request: Request, manifest: list[ManifestEntry], today: date) -> None:
    """Return when the approved ``request`` and its (hash-checked) ``manifest`` hold up; Refused
    with the first reason otherwise."""
    rows = _decision_rows(settings, request)
    for row in rows:
        _check_decision(settings, request, row)
    approvals = [r for r in rows if r["action"] == "approve"]
    _check_quorum(settings, request, approvals, today)
    completing = [r for r in approvals if r.get("manifest_sha256") == request.manifest_sha256]
    if not completing:
        raise Refused(f"request {request.id}: no approval records its manifest")
    version = completing[-1].get("catalog_version")
    if version is None:
        raise Refused(f"request {request.id}: its approval records no catalog version; submit it again")
    _check_manifest(settings, request, manifest, int(version))


def _decision_rows(settings: Settings, request: Request) -> list[dict[str, Any]]:
    """The stored rows of the request's effective decisions (as ``derive`` counted them)."""
    effective = {d.event_id for d in request.decisions if d.action in DECISIONS}
    events = lake.table(settings, "governance_events").read(filters=[("request_id", "=", request.id)])
    rows = [r for r in events.to_pylist() if r["event_id"] in effective]
    return sorted(rows, key=lambda r: r["seq"])


def _check_decision(settings: Settings, request: Request, row: dict[str, Any]) -> None:
    user, action, mode = row["user"], row["action"], row.get("identity_mode")
    configured = settings.identity.mode
    if mode != configured and (mode is not None or configured != "asserted"):
        raise Refused(
            f"{action} by {user} on request {request.id} was made under identity mode "
            f"{mode or 'unrecorded'}; the config requires {configured}"
        )
    if not roles_of(settings, user).intersection(_ROLES_FOR[action]):
        roles = " or ".join(_ROLES_FOR[action])
        raise Refused(f"{action} by {user} on request {request.id}: {user} is not in [roles] {roles}")
    if signatures_required(settings):
        payload = decision_payload(
            row, options=request.options, cohort_json=canonical(request.cohort), requester=request.requester
        )
        try:
            verify_decision(settings, user, payload, row.get("signature"), row["at"])
        except Refused as exc:
            raise Refused(f"{action} on request {request.id}: {exc}") from None


def _check_quorum(settings: Settings, request: Request, approvals: list[dict[str, Any]], today: date) -> None:
    signers = {r["user"] for r in approvals}
    if request.requester in signers:
        raise Refused(f"request {request.id}: separation of duties: the requester approved it")
    needed = settings.policy.approvals_required
    if len(signers) < needed:
        raise Refused(
            f"request {request.id}: {len(signers)} distinct approvers, the policy requires {needed}"
        )
    longest = timedelta(days=settings.policy.max_validity_days)
    for row in approvals:
        expires: date | None = row.get("expires")
        if expires is None or expires < today:
            raise Refused(f"request {request.id}: the approval by {row['user']} has expired")
        if expires > row["at"].date() + longest:
            raise Refused(f"request {request.id}: the approval by {row['user']} outlasts the policy maximum")


def _check_manifest(
    settings: Settings, request: Request, manifest: list[ManifestEntry], version: int
) -> None:
    """The manifest equals the cohort at ``version`` less opted-out patients: nothing added, nothing
    swapped (etag, size, UIDs compared), nothing dropped but opt-outs."""
    try:
        snapshot = lake.table(settings, "catalog").open(version)
        if snapshot is None:
            raise LakeError("no catalog")
        selected = cohorts.select(cohorts.read_catalog(settings, at=snapshot), request.cohort)
    except (LakeError, OSError, pa.ArrowException):
        raise Refused(
            f"request {request.id}: catalog version {version} recorded at approval cannot be read; "
            "submit it again"
        ) from None
    cohort = set(entries_from(selected))
    frozen = set(manifest)
    extra = frozen - cohort
    if extra:
        raise Refused(
            f"request {request.id}: the manifest holds {len(extra)} of {len(frozen)} objects "
            f"its cohort does not select at catalog version {version}"
        )
    opted_out = opted_out_patient_ids(settings)
    missing = [e for e in cohort - frozen if e.patient_id not in opted_out]
    if missing:
        raise Refused(
            f"request {request.id}: the manifest leaves out {len(missing)} objects its cohort selects "
            f"at catalog version {version}"
        )
