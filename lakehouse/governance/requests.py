"""Export requests as append-only events; state is derived, never stored.

Decisions on one request are serialized through the Delta app transaction
``request:<id>`` (``lake.Table.append_serialized``): a decision is checked against every event
committed before it, and a concurrent decision that lost the commit race is
re-checked against the winner, so it is either recorded once or refused with
the reason (e.g. "request … is rejected").
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.config.project import ProjectName
from lakehouse.deid.options import parse_options
from lakehouse.errors import InvalidDeidOption, InvalidProjectName, LakeError, Refused
from lakehouse.governance import cohort as cohorts
from lakehouse.governance.audit import append_audit, canonical
from lakehouse.governance.manifest import ManifestEntry, entries_from, read_manifest, write_manifest
from lakehouse.governance.optout import opted_out_patient_ids
from lakehouse.governance.roles import require_role

STATUSES = ("pending", "approved", "rejected", "revoked", "expired")
_REQUEST_ID = re.compile(r"^req-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Decision:
    seq: int
    action: str
    user: str
    at: datetime
    expires: date | None = None
    note: str | None = None
    reason: str | None = None
    manifest_sha256: str | None = None
    manifest_entries: int | None = None


@dataclass(frozen=True)
class Request:
    id: str
    project: str
    title: str
    purpose: str
    protocol: str
    cohort: dict[str, Any]
    options: list[str]
    requester: str
    submitted_at: datetime
    status: str
    decisions: list[Decision] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None
    manifest_entries: int | None = None
    expires: date | None = None

    @property
    def last_seq(self) -> int:
        return self.decisions[-1].seq

    def to_dict(self) -> dict[str, Any]:
        """For printing: identifier criteria are shown as counts."""
        data = asdict(self)
        data["cohort"] = cohorts.redact(self.cohort)
        return data


@dataclass(frozen=True)
class Permission:
    allowed: bool
    reason: str | None
    request: Request | None
    manifest: list[ManifestEntry] = field(default_factory=list)  # verified; only when allowed


# --- validation -------------------------------------------------------------


def _project_and_options(project: str, options: list[str]) -> tuple[ProjectName, list[str]]:
    """The project name and the de-identification options by the rules the export applies
    (``ProjectName``, ``deid.options.parse_options``); a refusal keeps their one-line reason."""
    try:
        return ProjectName(project), sorted(parse_options(options))
    except (InvalidProjectName, InvalidDeidOption) as exc:
        raise Refused(str(exc)) from None


def _text(name: str, value: str, limit: int = 2000) -> str:
    value = (value or "").strip()
    if not value:
        raise Refused(f"{name} is required")
    if len(value) > limit:
        raise Refused(f"{name} is longer than {limit} characters")
    return value


def _check_request_id(request_id: str) -> str:
    if not _REQUEST_ID.fullmatch(request_id or ""):
        raise Refused("request id must look like req-<12 hex digits>")
    return request_id


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


# --- state ------------------------------------------------------------------


def derive(rows: list[dict[str, Any]], now: datetime) -> Request:
    """Current state of one request from its events (any order; sorted by seq)."""
    rows = sorted(rows, key=lambda r: r["seq"])
    if [r["seq"] for r in rows] != list(range(1, len(rows) + 1)) or rows[0]["action"] != "submit":
        raise LakeError(f"governance events of request {rows[0]['request_id']} are inconsistent")
    first = rows[0]
    status, approvers, expiries = "pending", [], []
    sha, entries = None, None
    decisions = []
    for r in rows:
        decisions.append(
            Decision(
                r["seq"],
                r["action"],
                r["user"],
                r["at"],
                r["expires"],
                r["note"],
                r["reason"],
                r["manifest_sha256"],
                r["manifest_entries"],
            )
        )
        if r["action"] == "approve":
            approvers.append(r["user"])
            expiries.append(r["expires"])
            if r["manifest_sha256"]:
                status, sha, entries = "approved", r["manifest_sha256"], r["manifest_entries"]
        elif r["action"] == "reject":
            status = "rejected"
        elif r["action"] == "revoke":
            status = "revoked"
    expires = min(expiries) if sha else None
    if status == "approved" and expires is not None and now.date() > expires:
        status = "expired"
    return Request(
        id=first["request_id"],
        project=first["project"],
        title=first["title"],
        purpose=first["purpose"],
        protocol=first["protocol"],
        cohort=json.loads(first["cohort_json"]),
        options=list(first["options"] or []),
        requester=first["user"],
        submitted_at=first["at"],
        status=status,
        decisions=decisions,
        approvers=approvers,
        manifest_sha256=sha,
        manifest_entries=entries,
        expires=expires,
    )


def _events(snapshot: lake.Snapshot | None, settings: Settings, request_id: str | None = None) -> pa.Table:
    """Events as of ``snapshot`` (the current table when None)."""
    filters = [("request_id", "=", request_id)] if request_id else None
    return (snapshot or lake.table(settings, "governance_events")).read(filters=filters)


def _request_at(snapshot: lake.Snapshot | None, settings: Settings, request_id: str, now: datetime) -> Request:
    rows = _events(snapshot, settings, _check_request_id(request_id)).to_pylist()
    if not rows:
        raise Refused(f"no request {request_id}")
    return derive(rows, now)


def get_request(settings: Settings, request_id: str, *, now: datetime | None = None) -> Request:
    return _request_at(None, settings, request_id, _utc(now))


def list_requests(
    settings: Settings, *, status: str | None = None, project: str | None = None, now: datetime | None = None
) -> list[Request]:
    if status is not None and status not in STATUSES:
        raise Refused(f"status must be one of {', '.join(STATUSES)}")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in _events(None, settings).to_pylist():
        grouped.setdefault(row["request_id"], []).append(row)
    found = [derive(rows, _utc(now)) for rows in grouped.values()]
    found = [
        r
        for r in found
        if (status is None or r.status == status) and (project is None or r.project == project)
    ]
    return sorted(found, key=lambda r: (r.submitted_at, r.id))


# --- commands ---------------------------------------------------------------


def _event(request_id: str, seq: int, action: str, user: str, at: datetime, **values: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "request_id": request_id,
        "seq": seq,
        "action": action,
        "user": user,
        "at": at,
        **values,
    }


def submit_request(
    settings: Settings,
    *,
    user: str,
    project: str,
    title: str,
    purpose: str,
    protocol: str,
    cohort: dict[str, Any],
    options: list[str],
    now: datetime | None = None,
) -> Request:
    """Record a new pending request; the cohort and options are validated first."""
    require_role(settings, user, "requesters")
    project, chosen = _project_and_options(project, list(options))
    criteria = cohorts.parse_cohort(cohort)
    at = _utc(now)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    row = _event(
        request_id,
        1,
        "submit",
        user,
        at,
        project=project,
        title=_text("title", title, 200),
        purpose=_text("purpose", purpose),
        protocol=_text("protocol", protocol, 200),
        cohort_json=canonical(criteria),
        options=chosen,
    )
    events = lake.table(settings, "governance_events")
    events.append_serialized(f"request:{request_id}", lambda _snapshot: (events.spec.to_arrow([row]), 1, None))
    preview = preview_cohort(settings, criteria)
    append_audit(
        settings,
        user=user,
        action="request.submit",
        request_id=request_id,
        now=now,
        details={
            "project": project,
            "cohort_sha256": _sha(canonical(criteria)),
            "options": chosen,
            **_counts(preview),
        },
    )
    return get_request(settings, request_id, now=now)


def _decide(
    settings: Settings,
    request_id: str,
    user: str,
    action: str,
    now: datetime | None,
    decide: Callable[[Request, lake.Snapshot], dict[str, Any]],
) -> Request:
    """Append one decision checked by ``decide`` against a pinned snapshot; audit it,
    refusals included (with their one-line reason, which never holds PHI)."""
    at = _utc(now)
    events = lake.table(settings, "governance_events")

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, None]:
        current = _request_at(snapshot, settings, request_id, at)
        values = decide(current, snapshot)
        row = _event(request_id, current.last_seq + 1, action, user, at, **values)
        return events.spec.to_arrow([row]), current.last_seq + 1, None

    try:
        events.append_serialized(f"request:{_check_request_id(request_id)}", build)
    except Refused as exc:
        append_audit(
            settings,
            user=user,
            action=f"request.{action}.refused",
            request_id=request_id,
            now=now,
            details={"reason": str(exc)},
        )
        raise
    result = get_request(settings, request_id, now=now)
    details: dict[str, Any] = {"status": result.status}
    if action == "approve":
        details |= {
            "approvals": len(result.approvers),
            "manifest_sha256": result.manifest_sha256,
            "manifest_entries": result.manifest_entries,
        }
    append_audit(
        settings, user=user, action=f"request.{action}", request_id=request_id, now=now, details=details
    )
    return result


def approve(
    settings: Settings,
    request_id: str,
    *,
    user: str,
    expires: date,
    note: str = "",
    now: datetime | None = None,
) -> Request:
    """Record an approval; the one that completes the quorum freezes the manifest."""
    require_role(settings, user, "approvers")
    today = _utc(now).date()
    longest = settings.policy.max_validity_days
    if expires < today:
        raise Refused("expiry date is in the past")
    if expires > today + timedelta(days=longest):
        raise Refused(f"expiry is beyond the policy maximum of {longest} days")
    needed = settings.policy.approvals_required

    def decide(current: Request, _snapshot: lake.Snapshot) -> dict[str, Any]:
        if current.requester == user:
            raise Refused("separation of duties: the requester cannot approve their own request")
        if current.status != "pending":
            raise Refused(f"request {current.id} is {current.status}")
        if user in current.approvers:
            raise Refused(f"request {current.id} is already approved by {user}")
        values: dict[str, Any] = {
            "expires": expires,
            "approvals_required": needed,
            "note": note.strip() or None,
        }
        if len(set(current.approvers)) + 1 >= needed:
            sha, count = _freeze(settings, current)
            values |= {"manifest_sha256": sha, "manifest_entries": count}
        return values

    return _decide(settings, request_id, user, "approve", now, decide)


def _freeze(settings: Settings, current: Request) -> tuple[str, int]:
    rows = cohorts.select(cohorts.read_catalog(settings), current.cohort)
    rows, _dropped = cohorts.exclude_patients(rows, opted_out_patient_ids(settings))
    if rows.num_rows == 0:
        raise Refused(f"request {current.id}: the cohort resolves to no archive objects; nothing to approve")
    entries = entries_from(rows)
    return write_manifest(settings, current.id, entries), len(entries)


def reject(
    settings: Settings, request_id: str, *, user: str, reason: str, now: datetime | None = None
) -> Request:
    held = require_role(settings, user, "approvers", "admins")
    why = _text("reason", reason)

    def decide(current: Request, _snapshot: lake.Snapshot) -> dict[str, Any]:
        if current.requester == user and "admins" not in held:
            raise Refused("separation of duties: the requester cannot decide on their own request")
        if current.status != "pending":
            raise Refused(f"request {current.id} is {current.status}")
        return {"reason": why}

    return _decide(settings, request_id, user, "reject", now, decide)


def revoke(
    settings: Settings, request_id: str, *, user: str, reason: str, now: datetime | None = None
) -> Request:
    """Withdraw a request at any time before it is closed (admins, or an approver of it)."""
    held = require_role(settings, user, "approvers", "admins")
    why = _text("reason", reason)

    def decide(current: Request, _snapshot: lake.Snapshot) -> dict[str, Any]:
        if "admins" not in held and user not in current.approvers:
            raise Refused(f"only admins or an approver of request {current.id} may revoke it")
        if current.status in ("rejected", "revoked"):
            raise Refused(f"request {current.id} is {current.status}")
        return {"reason": why}

    return _decide(settings, request_id, user, "revoke", now, decide)


# --- export gate --------------------------------------------------------------


def load_manifest(settings: Settings, request_id: str) -> list[ManifestEntry]:
    """The frozen manifest of a request, verified against its recorded hash (Refused if tampered)."""
    return _verified_manifest(settings, get_request(settings, request_id))


def _verified_manifest(settings: Settings, request: Request) -> list[ManifestEntry]:
    if request.manifest_sha256 is None:
        raise Refused(f"request {request.id} has no frozen manifest (status {request.status})")
    return read_manifest(settings, request.id, request.manifest_sha256)


def may_run(settings: Settings, request_id: str, *, now: datetime | None = None) -> Permission:
    """Whether an export of this request may start now, and if not, why."""
    try:
        request = get_request(settings, request_id, now=now)
    except Refused as exc:
        return Permission(False, str(exc), None)
    if request.status != "approved":
        return Permission(False, f"request {request_id} is {request.status}", request)
    try:
        _project_and_options(request.project, request.options)  # recorded before submit checked them
        manifest = _verified_manifest(settings, request)
    except Refused as exc:
        return Permission(False, str(exc), request)
    return Permission(True, None, request, manifest)


# --- preview ------------------------------------------------------------------


def preview_cohort(settings: Settings, cohort: dict[str, Any]) -> cohorts.CohortPreview:
    """Counts of what the cohort would freeze now (opted-out patients left out)."""
    criteria = cohorts.parse_cohort(cohort)
    rows = cohorts.select(cohorts.read_catalog(settings), criteria)
    rows, dropped = cohorts.exclude_patients(rows, opted_out_patient_ids(settings))
    return cohorts.preview_of(rows, dropped)


def _counts(preview: cohorts.CohortPreview) -> dict[str, Any]:
    return {"preview_" + k: v for k, v in preview.to_dict().items() if k != "modalities"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
