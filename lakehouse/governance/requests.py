"""Export requests as append-only events; state is derived, never stored.

Decisions on one request are serialized through the Delta app transaction
``request:<id>`` (``lake.Table.append_serialized``): a decision is checked against every event
committed before it, and a concurrent decision that lost the commit race is
re-checked against the winner, so it is either recorded once or refused with
the reason (e.g. "request … is rejected").

A submit or decision and its audit event are one step: the event row is written first and
takes effect only once the audit event naming it exists (``effective``). A process killed
between the two leaves a void row (it still holds its ``seq``); running the command again
records it anew. A decider that finds a row whose audit event is not there yet waits for it
(up to ``IN_FLIGHT_SECONDS``: its writer may be between the two commits) before taking it as
void; each decision records the audit head it saw, so a row whose audit event lands after a
later decider looked stays void (its writer then records a ``.void`` event and is refused).
Every effective event must be a transition the commands allow from the state before it, and
recorded heads never go back: events written around the commands refuse the whole request.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.config.project import ProjectName
from lakehouse.deid.options import parse_options
from lakehouse.deid.risk import audit_fields
from lakehouse.errors import InvalidDeidOption, InvalidProjectName, LakeError, Refused
from lakehouse.governance import cohort as cohorts
from lakehouse.governance.audit import GENESIS, AuditLinks, append_audit, audit_links, canonical, current_head
from lakehouse.governance.manifest import ManifestEntry, entries_from, read_manifest, write_manifest
from lakehouse.governance.optout import opted_out_patient_ids
from lakehouse.governance.risk import cohort_risk
from lakehouse.governance.roles import require_role
from lakehouse.governance.signing import decision_payload, sign_decision
from lakehouse.governance.verify import verify_approval

STATUSES = ("pending", "approved", "rejected", "revoked", "expired")
_REQUEST_ID = re.compile(r"^req-[0-9a-f]{12}$")
# How long a decider waits for the audit event of a row newer than every effective one before
# taking that row as void (its writer killed between the two commits); the audit event normally
# follows within a second, but a busy store with many writers can take much longer. A row whose
# own time is older than STALE_SECONDS is not waited for: its writer is long gone.
IN_FLIGHT_SECONDS = 30.0
STALE_SECONDS = 600.0


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
    event_id: str | None = None


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
    last_seq: int = 0  # of every stored event, void ones included: the next event takes last_seq + 1

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


def derive(rows: list[dict[str, Any]], now: datetime, links: AuditLinks) -> Request | None:
    """Current state of one request from its events (any order; sorted by seq), counting only
    the ``effective`` ones; None when its submit never took effect."""
    rows = sorted(rows, key=lambda r: r["seq"])
    if [r["seq"] for r in rows] != list(range(1, len(rows) + 1)) or rows[0]["action"] != "submit":
        raise LakeError(f"governance events of request {rows[0]['request_id']} are inconsistent")
    live = effective(rows, links)
    if not live or live[0]["seq"] != 1:
        return None
    first = live[0]
    status = "pending"
    approvers: list[str] = []
    expiries: list[date] = []
    sha, entries = None, None
    decisions = []
    for r in live:
        _check_transition(first["user"], status, approvers, r)
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
                r["event_id"],
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
        last_seq=rows[-1]["seq"],
    )


def _check_transition(requester: str, status: str, approvers: list[str], row: dict[str, Any]) -> None:
    """Every effective event is one the commands could have recorded from the state before it
    (they check the same rules against the same effective events); anything else was written
    around them, and the request is refused as a whole rather than read past it."""
    action, user = row["action"], row["user"]
    allowed = {
        "submit": row["seq"] == 1,
        "approve": status == "pending" and user != requester and user not in approvers,
        "reject": status == "pending",
        "revoke": status not in ("rejected", "revoked"),
    }.get(action, False)
    if not allowed:
        raise Refused(
            f"governance events of request {row['request_id']} are inconsistent: "
            f"{action} at seq {row['seq']} while {status}"
        )


def effective(rows: list[dict[str, Any]], links: AuditLinks) -> list[dict[str, Any]]:
    """The events (in seq order) that took effect. Each needs the audit event naming it, and that
    audit event must be within the chain head every later effective decision recorded: a row
    whose audit event came after a later decider looked was void for that decider, so stays void."""
    rows = sorted(rows, key=lambda r: r["seq"])
    heads = _head_positions(rows, links)
    kept: list[dict[str, Any]] = []
    horizon: float = math.inf
    for row, head in zip(reversed(rows), reversed(heads), strict=True):
        position = links.subject_seq.get(row["event_id"])
        if position is None or position > horizon:
            continue
        kept.append(row)
        if head is not None:
            horizon = min(horizon, head)
    return kept[::-1]


def _head_positions(rows: list[dict[str, Any]], links: AuditLinks) -> list[int | None]:
    """Where in the chain each row's recorded head is (-1: the empty chain; None: none recorded).

    A command reads the head after every earlier row of its request was committed, so heads never
    go back along seq, and the head of a row with an audit event is in the chain. A row breaking
    either was written around the commands (say, to void a later revoke): the request is refused."""
    positions: list[int | None] = []
    latest = -1
    for row in rows:
        head = row.get("audit_head")
        position = -1 if head == GENESIS else links.head_seq.get(head) if head else None
        linked = row["event_id"] in links.subject_seq
        if (head and position is None and linked) or (position is not None and position < latest):
            raise Refused(
                f"governance events of request {row['request_id']} are inconsistent: "
                f"seq {row['seq']} records an audit head out of order"
            )
        latest = latest if position is None else position
        positions.append(position)
    return positions


def _in_flight(rows: list[dict[str, Any]], links: AuditLinks, wall: datetime) -> bool:
    """A row newer than every effective one, without its audit event yet, and recent enough that
    its writer may still add it (the row's time is when its command started, not its commit)."""
    live = effective(rows, links)
    newest = live[-1]["seq"] if live else 0
    recent = wall - timedelta(seconds=STALE_SECONDS)
    return any(
        r["seq"] > newest and r["event_id"] not in links.subject_seq and r["at"] > recent for r in rows
    )


def _events(snapshot: lake.Snapshot | None, settings: Settings, request_id: str | None = None) -> pa.Table:
    """Events as of ``snapshot`` (the current table when None)."""
    filters = [("request_id", "=", request_id)] if request_id else None
    return (snapshot or lake.table(settings, "governance_events")).read(filters=filters)


def _rows_and_links(
    snapshot: lake.Snapshot | None, settings: Settings, request_id: str | None
) -> tuple[list[dict[str, Any]], AuditLinks]:
    """The stored events, then (read after them, so it covers them) what the audit chain says."""
    rows = _events(snapshot, settings, request_id).to_pylist()
    links = audit_links(settings, request_id=request_id, heads=[r.get("audit_head") or "" for r in rows])
    return rows, links


def _request_at(snapshot: lake.Snapshot | None, settings: Settings, request_id: str, now: datetime) -> Request:
    rows, links = _rows_and_links(snapshot, settings, _check_request_id(request_id))
    request = derive(rows, now, links) if rows else None
    if request is None:
        raise Refused(f"no request {request_id}")
    return request


def get_request(settings: Settings, request_id: str, *, now: datetime | None = None) -> Request:
    return _request_at(None, settings, request_id, _utc(now))


def list_requests(
    settings: Settings, *, status: str | None = None, project: str | None = None, now: datetime | None = None
) -> list[Request]:
    if status is not None and status not in STATUSES:
        raise Refused(f"status must be one of {', '.join(STATUSES)}")
    rows, links = _rows_and_links(None, settings, None)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["request_id"], []).append(row)
    derived = [derive(rows, _utc(now), links) for rows in grouped.values()]
    found = [
        r
        for r in derived
        if r is not None and (status is None or r.status == status) and (project is None or r.project == project)
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
    preview = preview_cohort(settings, criteria, chosen)  # before anything is written: a refusal records nothing
    at = _utc(now)
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    head = current_head(settings)
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
        audit_head=head.hash if head else GENESIS,
    )
    events = lake.table(settings, "governance_events")
    events.append_serialized(f"request:{request_id}", lambda _snapshot: (events.spec.to_arrow([row]), 1, None))
    append_audit(
        settings,
        user=user,
        action="request.submit",
        request_id=request_id,
        now=now,
        subject_event_id=row["event_id"],
        details={
            "project": project,
            "cohort_sha256": _sha(canonical(criteria)),
            "options": chosen,
            **_counts(preview),
        },
    )
    return get_request(settings, request_id, now=now)


class _InFlight(Exception):
    """A newer row of the request still waits for its audit event."""


def _decide(
    settings: Settings,
    request_id: str,
    user: str,
    action: str,
    now: datetime | None,
    decide: Callable[[Request, lake.Snapshot], dict[str, Any]],
) -> Request:
    """Append one decision checked by ``decide`` against a pinned snapshot, then the audit event
    that makes it effective; refusals are audited too (with their one-line reason, never PHI).
    The row records the audit head it was decided against (``audit_head``, a checkpoint)."""
    at = _utc(now)
    events = lake.table(settings, "governance_events")
    patience = time.monotonic() + IN_FLIGHT_SECONDS

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, tuple[str, Request]]:
        rows, links = _rows_and_links(snapshot, settings, request_id)
        if time.monotonic() < patience and _in_flight(rows, links, datetime.now(UTC)):
            raise _InFlight
        current = derive(rows, at, links) if rows else None
        if current is None:
            raise Refused(f"no request {request_id}")
        values = decide(current, snapshot)
        head = links.head.hash if links.head else GENESIS
        new = _event(request_id, current.last_seq + 1, action, user, at, audit_head=head, **values)
        table = events.spec.to_arrow([new])
        stored = table.to_pylist()[0]  # every column, as it will read back
        after = derive([*rows, stored], at, links.with_pending(stored["event_id"]))
        assert after is not None, "a request with a live submit stays live"
        return table, stored["seq"], (stored["event_id"], after)

    app = f"request:{_check_request_id(request_id)}"
    while True:
        try:
            event_id, after = events.append_serialized(app, build)
            break
        except _InFlight:
            time.sleep(0.1)
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
    details: dict[str, Any] = {"status": after.status}
    if action == "approve":
        details |= {
            "approvals": len(after.approvers),
            "manifest_sha256": after.manifest_sha256,
            "manifest_entries": after.manifest_entries,
        }
    append_audit(
        settings,
        user=user,
        action=f"request.{action}",
        request_id=request_id,
        now=now,
        details=details,
        subject_event_id=event_id,
    )
    result = get_request(settings, request_id, now=now)
    if event_id not in {d.event_id for d in result.decisions}:
        # Another decider waited IN_FLIGHT_SECONDS for this audit event, then decided without it.
        reason = f"request {request_id} changed before this {action} was recorded; run it again"
        append_audit(
            settings,
            user=user,
            action=f"request.{action}.void",
            request_id=request_id,
            now=now,
            details={"reason": reason, "event_id": event_id},
        )
        raise Refused(reason)
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
    at = _utc(now)  # one time for the row, its signature and its audit event
    today = at.date()
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
            sha, count, version = _freeze(settings, current)
            values |= {"manifest_sha256": sha, "manifest_entries": count, "catalog_version": version}
        return _signed(settings, current, "approve", user, at, values)

    return _decide(settings, request_id, user, "approve", at, decide)


def _freeze(settings: Settings, current: Request) -> tuple[str, int, int]:
    """Freeze the manifest from one pinned catalog version: its hash, size and that version
    (the export recomputes the cohort at it)."""
    catalog = lake.table(settings, "catalog").open()
    if catalog is None:
        raise Refused(f"request {current.id}: there is no catalog yet; run `lakehouse catalog sync`")
    rows = cohorts.select(cohorts.read_catalog(settings, at=catalog), current.cohort)
    rows, _dropped = cohorts.exclude_patients(rows, opted_out_patient_ids(settings))
    if rows.num_rows == 0:
        raise Refused(f"request {current.id}: the cohort resolves to no archive objects; nothing to approve")
    entries = entries_from(rows)
    return write_manifest(settings, current.id, entries), len(entries), catalog.version


def _signed(
    settings: Settings, current: Request, action: str, user: str, at: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    """The decision's values with the identity mode and the decider's signature over them
    (Refused when a signature is required and the decider's key cannot give a valid one)."""
    values = {**values, "identity_mode": settings.identity.mode}
    row = {"request_id": current.id, "seq": current.last_seq + 1, "action": action, "user": user, "at": at, **values}
    payload = decision_payload(
        row, options=current.options, cohort_json=canonical(current.cohort), requester=current.requester
    )
    return {**values, "signature": sign_decision(settings, payload)}


def reject(
    settings: Settings, request_id: str, *, user: str, reason: str, now: datetime | None = None
) -> Request:
    held = require_role(settings, user, "approvers", "admins")
    why = _text("reason", reason)
    at = _utc(now)

    def decide(current: Request, _snapshot: lake.Snapshot) -> dict[str, Any]:
        if current.requester == user and "admins" not in held:
            raise Refused("separation of duties: the requester cannot decide on their own request")
        if current.status != "pending":
            raise Refused(f"request {current.id} is {current.status}")
        return _signed(settings, current, "reject", user, at, {"reason": why})

    return _decide(settings, request_id, user, "reject", at, decide)


def revoke(
    settings: Settings, request_id: str, *, user: str, reason: str, now: datetime | None = None
) -> Request:
    """Withdraw a request at any time before it is closed (admins, or an approver of it)."""
    held = require_role(settings, user, "approvers", "admins")
    why = _text("reason", reason)
    at = _utc(now)

    def decide(current: Request, _snapshot: lake.Snapshot) -> dict[str, Any]:
        if "admins" not in held and user not in current.approvers:
            raise Refused(f"only admins or an approver of request {current.id} may revoke it")
        if current.status in ("rejected", "revoked"):
            raise Refused(f"request {current.id} is {current.status}")
        return _signed(settings, current, "revoke", user, at, {"reason": why})

    return _decide(settings, request_id, user, "revoke", at, decide)


# --- export gate --------------------------------------------------------------


def load_manifest(settings: Settings, request_id: str) -> list[ManifestEntry]:
    """The frozen manifest of a request, verified against its recorded hash (Refused if tampered)."""
    return _verified_manifest(settings, get_request(settings, request_id))


def _verified_manifest(settings: Settings, request: Request) -> list[ManifestEntry]:
    if request.manifest_sha256 is None:
        raise Refused(f"request {request.id} has no frozen manifest (status {request.status})")
    return read_manifest(settings, request.id, request.manifest_sha256)


def may_run(settings: Settings, request_id: str, *, now: datetime | None = None) -> Permission:
    """Whether an export of this request may start now, and if not, why: its state, its
    manifest's hash, then every decision and the manifest proved again (``verify``)."""
    try:
        request = get_request(settings, request_id, now=now)
    except Refused as exc:
        return Permission(False, str(exc), None)
    if request.status != "approved":
        return Permission(False, f"request {request_id} is {request.status}", request)
    try:
        _project_and_options(request.project, request.options)  # recorded before submit checked them
        manifest = _verified_manifest(settings, request)
        verify_approval(settings, request, manifest, _utc(now).date())
    except Refused as exc:
        return Permission(False, str(exc), request)
    return Permission(True, None, request, manifest)


# --- preview ------------------------------------------------------------------


def preview_cohort(settings: Settings, cohort: dict[str, Any], options: Iterable[str] = ()) -> cohorts.CohortPreview:
    """Counts of what the cohort would freeze now (opted-out patients left out), and its
    k-anonymity under ``options`` against ``[policy] min_k``."""
    criteria = cohorts.parse_cohort(cohort)
    rows = cohorts.select(cohorts.read_catalog(settings), criteria)
    rows, dropped = cohorts.exclude_patients(rows, opted_out_patient_ids(settings))
    decision = cohort_risk(settings, rows, options)
    return replace(cohorts.preview_of(rows, dropped), risk=decision.to_dict())


def _counts(preview: cohorts.CohortPreview) -> dict[str, Any]:
    counts = {"preview_" + k: v for k, v in preview.to_dict().items() if k not in ("modalities", "risk")}
    return {**counts, **(audit_fields(preview.risk) if preview.risk else {})}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
