"""Frozen manifests (restricted/governance/manifests, a Delta table partitioned by request).

A Delta table rather than one JSON file per request: governance may only use
the lake layer, the append is atomic, and exports/Spark can join on it. The
SHA-256 covers the request id and every entry in key order, so rows edited,
added, dropped or moved to another request no longer match the hash recorded
in the approval.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass, fields, replace
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import Refused
from lakehouse.governance.audit import canonical

HASH_PREFIX = "lakehouse-manifest-v1"


@dataclass(frozen=True)
class ManifestEntry:
    key: str
    etag: str
    size: int
    sop_instance_uid: str  # "" for an object the catalog found none in: quarantined at export
    study_instance_uid: str | None
    series_instance_uid: str | None
    patient_id: str | None


ENTRY_FIELDS = [f.name for f in fields(ManifestEntry)]


def manifest_sha256(request_id: str, entries: list[ManifestEntry]) -> str:
    digest = hashlib.sha256(f"{HASH_PREFIX}\n{request_id}\n".encode())
    for entry in sorted(entries, key=lambda e: e.key):
        digest.update(canonical(list(astuple(entry))).encode() + b"\n")
    return digest.hexdigest()


def entries_from(rows: pa.Table) -> list[ManifestEntry]:
    entries = [ManifestEntry(**{k: r[k] for k in ENTRY_FIELDS}) for r in rows.select(ENTRY_FIELDS).to_pylist()]
    return [e if e.sop_instance_uid is not None else replace(e, sop_instance_uid="") for e in entries]


def write_manifest(settings: Settings, request_id: str, entries: list[ManifestEntry]) -> str:
    """Store the manifest (once per request and hash) and return its hash."""
    sha = manifest_sha256(request_id, entries)
    manifests = lake.table(settings, "governance_manifests")

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, str]:
        written = snapshot.transaction_version(f"manifest:{request_id}") or 0
        present = snapshot.read(
            columns=["key"], filters=[("request_id", "=", request_id), ("manifest_sha256", "=", sha)]
        )
        rows: list[dict[str, Any]] = []
        if present.num_rows == 0:
            rows = [{"request_id": request_id, "manifest_sha256": sha, **e.__dict__} for e in entries]
        return manifests.spec.to_arrow(rows), written + 1, sha

    return str(manifests.append_serialized(f"manifest:{request_id}", build))


def read_manifest(settings: Settings, request_id: str, expected_sha256: str) -> list[ManifestEntry]:
    """The stored manifest, verified against the hash recorded in the approval."""
    rows = lake.table(settings, "governance_manifests").read(
        filters=[("request_id", "=", request_id), ("manifest_sha256", "=", expected_sha256)]
    )
    entries = sorted(entries_from(rows), key=lambda e: e.key)
    if not entries or manifest_sha256(request_id, entries) != expected_sha256:
        raise Refused(
            f"manifest of request {request_id} does not match its recorded hash (missing or tampered)"
        )
    return entries
