"""Tamper-evident audit chain (restricted/governance/audit).

Each event's ``hash`` is SHA-256 over the canonical JSON of its content and
the previous event's hash, so editing, deleting or reordering a stored event
breaks the chain at that point. A hash chain alone cannot show a cut tail, so
every append also records its ``seq`` as the Delta app transaction
``lakehouse-audit`` in the same atomic commit; ``verify_audit`` compares the
chain's end with it. Rewriting the whole chain with fresh hashes is only
detectable against a head noted elsewhere: pass it as ``expect_head``.

Details are counts, hashes and codes only, never PHI.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import LakeError

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
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        values = (
            value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        )
        if not isinstance(key, str) or not all(isinstance(v, _SCALARS) for v in values):
            raise LakeError(f"audit details {key!r}: only flat counts, hashes and codes are allowed")


def append_audit(
    settings: Settings,
    *,
    user: str,
    action: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Append one event to the chain (serialized across processes)."""
    details = details or {}
    _check_details(details)
    details_json = canonical(details)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    audit = lake.table(settings, "audit")

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, None]:
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
        }
        row["hash"] = event_hash(row)
        return audit.spec.to_arrow([row]), seq, None

    audit.append_serialized(AUDIT_APP, build)


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
class AuditVerification:
    ok: bool
    events: int
    head_hash: str | None
    recorded_head_seq: int | None
    first_broken: BrokenLink | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_audit(settings: Settings, *, expect_head: str | None = None) -> AuditVerification:
    """Recompute the chain in ``seq`` order and name the first broken link."""
    audit = lake.table(settings, "audit")
    snapshot = audit.open()  # one snapshot: the recorded head and the rows come from the same version
    recorded = None if snapshot is None else snapshot.transaction_version(AUDIT_APP)
    try:
        rows = (snapshot or audit).read().sort_by([("seq", "ascending")]).to_pylist()
    except (OSError, pa.ArrowException, LakeError) as exc:
        problem = f"audit table cannot be read ({type(exc).__name__}): data files altered or missing"
        return AuditVerification(False, 0, None, recorded, BrokenLink(0, None, problem))
    broken = _first_broken(rows)
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
    return AuditVerification(broken is None, len(rows), head, recorded, broken)


def _first_broken(rows: list[dict[str, Any]]) -> BrokenLink | None:
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
        prev = row["hash"]
    return None
