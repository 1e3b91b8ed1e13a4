"""Tamper-evident audit chain (restricted/governance/audit).

Each event's ``hash`` is SHA-256 over the canonical JSON of its content and
the previous event's hash, so editing, deleting or reordering a stored event
breaks the chain at that point. A hash chain alone cannot show a cut tail, so
every append also records its ``seq`` as the Delta app transaction
``lakehouse-audit`` in the same atomic commit; ``verify_audit`` compares the
chain's end with it. Rewriting the whole chain with fresh hashes is only
detectable against a head noted elsewhere: pass it as ``expect_head``.

Checkpoints: every decision row (``audit_head``) and every export run state records the
chain head it saw; ``verify_audit`` checks that each recorded head is still in the chain,
so cutting the newest events is detected whenever anything recorded a later head. It also
checks that every governance event an audit event names still exists.

A governance event (submit or decision) is written first and takes effect only once the
audit event naming it (``subject_event_id``) exists: a kill between the two leaves a void
row, never a decision without its audit event (see ``requests.derive``).

Details are counts, hashes and codes only, never PHI.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import LakeError, Refused

AUDIT_APP = "lakehouse-audit"
GENESIS = "0" * 64
_SCALARS = (str, int, float, bool, type(None))


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of an event row's content and its ``prev_hash`` (every column but ``hash``)."""
    body = {
        "seq": event["seq"],
        "event_id": event["event_id"],
        "at": event["at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "user": event["user"],
        "action": event["action"],
        "request_id": event["request_id"],
        "details": json.loads(event["details_json"]),
        "prev_hash": event["prev_hash"],
    }
    if event.get("subject_event_id") is not None:  # absent from events written before it existed
        body["subject_event_id"] = event["subject_event_id"]
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        values = (
            value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        )
        if not isinstance(key, str) or not all(isinstance(v, _SCALARS) for v in values):
            raise LakeError(f"audit details {key!r}: only flat counts, hashes and codes are allowed")


@dataclass(frozen=True)
class AuditHead:
    """The newest event of the chain: a checkpoint others record."""

    seq: int
    hash: str


def append_audit(
    settings: Settings,
    *,
    user: str,
    action: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
    subject_event_id: str | None = None,
) -> AuditHead:
    """Append one event to the chain (serialized across processes); returns the new head.
    ``subject_event_id`` names the governance event this one makes effective."""
    details = details or {}
    _check_details(details)
    details_json = canonical(details)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    audit = lake.table(settings, "audit")

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, AuditHead]:
        last = snapshot.transaction_version(AUDIT_APP)
        seq = 0 if last is None else last + 1
        row = {
            "seq": seq,
            "event_id": uuid.uuid4().hex,
            "at": at,
            "user": user,
            "action": action,
            "request_id": request_id,
            "details_json": details_json,
            "prev_hash": GENESIS if last is None else _hash_at(snapshot, last),
            "subject_event_id": subject_event_id,
        }
        digest = event_hash(row)
        signed = {**row, "hash": digest, "signature": _sign(settings, user, at, digest)}
        return audit.spec.to_arrow([signed]), seq, AuditHead(seq, digest)

    head: AuditHead = audit.append_serialized(AUDIT_APP, build)
    return head


def _event_payload(user: str, at: datetime, digest: str) -> dict[str, Any]:
    """What an audit event's signature covers: who, when, and the event's hash (so its content
    and its place in the chain). Shaped unlike a decision payload, so neither stands for the other."""
    return {"signer": user, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "audit_event": digest}


def _sign(settings: Settings, user: str, at: datetime, digest: str) -> str | None:
    """The acting user's signature over the event when their key is configured and allowed;
    None otherwise (an audit event is never refused for want of a key)."""
    from lakehouse.governance import signing  # signing builds on this module's canonical JSON

    try:
        if signing.load_signing_key(settings) is None:
            return None
        return signing.sign_decision(settings, _event_payload(user, at, digest))
    except Refused:
        return None


def current_head(settings: Settings) -> AuditHead | None:
    """The chain's newest event, None while the chain is empty."""
    snapshot = lake.table(settings, "audit").open()
    return None if snapshot is None else _head_of(snapshot)


def _head_of(snapshot: lake.Snapshot) -> AuditHead | None:
    last = snapshot.transaction_version(AUDIT_APP)
    return None if last is None else AuditHead(last, _hash_at(snapshot, last))


@dataclass(frozen=True)
class AuditLinks:
    """What the chain says about some governance events, read from one snapshot:
    the chain position of the audit event naming each event, and of each recorded head."""

    head: AuditHead | None
    subject_seq: dict[str, int]
    head_seq: dict[str, int]

    def with_pending(self, event_id: str) -> AuditLinks:
        """As it will be once the audit event of ``event_id`` is the next one appended."""
        after = (self.head.seq if self.head else -1) + 1
        heads = {**self.head_seq, self.head.hash: self.head.seq} if self.head else self.head_seq
        return AuditLinks(self.head, {**self.subject_seq, event_id: after}, heads)


def audit_links(settings: Settings, *, request_id: str | None, heads: Iterable[str]) -> AuditLinks:
    """Links for the events of one request (or of all when None) and the heads they recorded."""
    snapshot = lake.table(settings, "audit").open()
    if snapshot is None:
        return AuditLinks(None, {}, {})
    filters = [("request_id", "=", request_id)] if request_id else None
    rows = snapshot.read(filters=filters).to_pylist()  # all columns: older chains lack subject_event_id
    subjects = {r["subject_event_id"]: r["seq"] for r in rows if r.get("subject_event_id")}
    wanted = sorted({h for h in heads if h})
    found = snapshot.read(columns=["seq", "hash"], filters=[("hash", "in", wanted)]) if wanted else None
    head_seq = {r["hash"]: r["seq"] for r in found.to_pylist()} if found is not None else {}
    return AuditLinks(_head_of(snapshot), subjects, head_seq)


def _hash_at(snapshot: lake.Snapshot, seq: int) -> str:
    rows = snapshot.read(columns=["hash"], filters=[("seq", "=", seq)])
    if rows.num_rows != 1:
        raise LakeError("audit chain head is missing or duplicated; run `lakehouse audit verify`")
    return str(rows["hash"][0].as_py())


@dataclass(frozen=True)
class BrokenLink:
    index: int
    event_id: str | None
    problem: str


@dataclass(frozen=True)
class Checkpoint:
    """A chain head recorded outside the chain: by a decision, an export run, a dataset version."""

    source: str
    head: str


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    events: int
    head_hash: str | None
    recorded_head_seq: int | None
    first_broken: BrokenLink | None
    checkpoints: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_audit(
    settings: Settings, *, expect_head: str | None = None, checkpoints: Iterable[Checkpoint] = ()
) -> AuditVerification:
    """Recompute the chain in ``seq`` order and name the first broken link; then check that every
    head recorded by a decision or passed in ``checkpoints`` is in the chain, and that every
    governance event the chain names exists."""
    audit = lake.table(settings, "audit")
    snapshot = audit.open()  # one snapshot: the recorded head and the rows come from the same version
    recorded = None if snapshot is None else snapshot.transaction_version(AUDIT_APP)
    try:
        rows = (snapshot or audit).read().sort_by([("seq", "ascending")]).to_pylist()
        events = lake.table(settings, "governance_events").read().to_pylist()
    except (OSError, pa.ArrowException, LakeError) as exc:
        problem = f"audit table cannot be read ({type(exc).__name__}): data files altered or missing"
        return AuditVerification(False, 0, None, recorded, BrokenLink(0, None, problem))
    broken = _first_broken(settings, rows)
    if broken is None and recorded is not None and len(rows) != recorded + 1:
        broken = BrokenLink(
            len(rows),
            None,
            f"chain has {len(rows)} events but the Delta log recorded "
            f"seq {recorded} as appended (events cut from the end)",
        )
    head = rows[-1]["hash"] if rows else None
    if broken is None and expect_head is not None and expect_head not in {r["hash"] for r in rows}:
        broken = BrokenLink(len(rows), None, "the expected head hash is not in the chain (chain rewritten)")
    recorded_heads = [*_decision_checkpoints(events), *checkpoints]
    if broken is None:
        broken = _checkpoint_missing(rows, recorded_heads) or _subject_missing(rows, events)
    return AuditVerification(broken is None, len(rows), head, recorded, broken, len(recorded_heads))


def _decision_checkpoints(events: list[dict[str, Any]]) -> list[Checkpoint]:
    return [
        Checkpoint(f"event {e['seq']} of request {e['request_id']}", e["audit_head"])
        for e in events
        if e.get("audit_head") and e["audit_head"] != GENESIS
    ]


def _checkpoint_missing(rows: list[dict[str, Any]], checkpoints: list[Checkpoint]) -> BrokenLink | None:
    hashes = {r["hash"] for r in rows}
    for checkpoint in checkpoints:
        if checkpoint.head not in hashes:
            return BrokenLink(
                len(rows),
                None,
                f"{checkpoint.source} recorded audit head {checkpoint.head[:16]} which is not in the chain "
                "(events cut from the end, or the chain rewritten)",
            )
    return None


def _subject_missing(rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> BrokenLink | None:
    known = {e["event_id"] for e in events}
    for index, row in enumerate(rows):
        subject = row.get("subject_event_id")
        if subject and subject not in known:
            return BrokenLink(
                index,
                row["event_id"],
                f"names governance event {subject} which is not in governance_events (decisions removed)",
            )
    return None


def _signature_holds(settings: Settings, row: dict[str, Any]) -> bool:
    from lakehouse.governance import signing  # signing builds on this module's canonical JSON

    if not any(allowed.principal == row["user"] for allowed in signing.allowed_signers(settings)):
        return True  # nothing to check it against (the signer's key left the config)
    payload = _event_payload(row["user"], row["at"], row["hash"])
    try:
        signing.verify_decision(settings, row["user"], payload, row["signature"], row["at"])
    except Refused:
        return False
    return True


def _first_broken(settings: Settings, rows: list[dict[str, Any]]) -> BrokenLink | None:
    prev = GENESIS
    for index, row in enumerate(rows):
        if row["seq"] != index:
            return BrokenLink(
                index,
                row["event_id"],
                f"seq {row['seq']} where {index} was expected (event deleted, duplicated or reordered)",
            )
        if row["prev_hash"] != prev:
            return BrokenLink(index, row["event_id"], "prev_hash does not match the previous event's hash")
        try:
            recomputed = event_hash(row)
        except (ValueError, TypeError):
            recomputed = ""
        if recomputed != row["hash"]:
            return BrokenLink(
                index, row["event_id"], "hash does not match the event's content (event edited)"
            )
        if row.get("signature") and not _signature_holds(settings, row):
            return BrokenLink(index, row["event_id"], "its signature does not verify (event forged)")
        prev = row["hash"]
    return None


@dataclass(frozen=True)
class AuditEvent:
    """One event as `audit list` shows it: who, when, what, and its counts, hashes and codes."""

    seq: int
    at: datetime
    user: str
    action: str
    request_id: str | None
    details: dict[str, Any]
    hash: str
    subject_event_id: str | None
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_audit(
    settings: Settings, *, since: datetime | None = None, request_id: str | None = None
) -> list[AuditEvent]:
    """The chain's events in order, from ``since`` on and of one request when given."""
    filters: list[tuple[str, str, Any]] = []
    if since is not None:
        filters.append(("at", ">=", since.astimezone(UTC)))
    if request_id is not None:
        filters.append(("request_id", "=", request_id))
    rows = lake.table(settings, "audit").read(filters=filters or None).sort_by([("seq", "ascending")])
    return [
        AuditEvent(
            seq=r["seq"],
            at=r["at"],
            user=r["user"],
            action=r["action"],
            request_id=r["request_id"],
            details=json.loads(r["details_json"]),
            hash=r["hash"],
            subject_event_id=r.get("subject_event_id"),
            signed=bool(r.get("signature")),
        )
        for r in rows.to_pylist()
    ]
