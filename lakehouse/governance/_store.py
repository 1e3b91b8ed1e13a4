"""Where governance keeps its Delta tables, and the one way it appends to them.

Serialized append: the caller reads a *pinned* snapshot, decides what to write
from it, and commits through that same snapshot with the Delta app transaction
``(app_id, version)``. delta-rs fails a commit when a commit it did not see
carries the same app id (``CommitFailedError``); we then re-read and decide
again. So for one app id (one request's history, or the audit chain) every
commit is based on everything committed before it — a total order given by
the Delta log, with no lost or duplicated decision.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakehouse.config import Settings
from lakehouse.errors import LakeError
from lakehouse.lake import DeltaLocation, read_snapshot, table_spec

_PATHS = {
    "governance_events": "governance/events",
    "governance_manifests": "governance/manifests",
    "optouts": "governance/optouts",
    "audit": "governance/audit",
}
MAX_ATTEMPTS = 40

# build(snapshot) -> (rows to append, app transaction version, result to return)
Build = Callable[[DeltaTable], tuple[pa.Table, int, Any]]


def location(settings: Settings, table: str) -> DeltaLocation:
    """A governance table (or the catalog) in the restricted zone."""
    if table == "catalog":
        return DeltaLocation(settings.restricted, "catalog", table_spec("catalog"))
    return DeltaLocation(settings.restricted, _PATHS[table], table_spec(table))


def snapshot(loc: DeltaLocation) -> DeltaTable:
    """The table's current version (created empty from its spec if missing)."""
    table = loc.open()
    if table is None:
        loc.create()
        table = loc.open()
    if table is None:
        raise LakeError(f"could not create table {loc.spec.name if loc.spec else loc.uri}")
    return table


def append_serialized(
    loc: DeltaLocation, app_id: str, build: Build, *, metadata: dict[str, str] | None = None
) -> Any:
    """Append what ``build`` decides from a pinned snapshot; on a concurrent commit
    to the same ``app_id`` re-read and call ``build`` again (it may raise Refused)."""
    assert loc.spec is not None
    for attempt in range(MAX_ATTEMPTS):
        table = snapshot(loc)
        rows, txn_version, result = build(table)
        rows = loc.spec.conform(rows)
        try:
            write_deltalake(
                table,
                rows,
                mode="append",
                commit_properties=CommitProperties(
                    custom_metadata=metadata,
                    app_transactions=[Transaction(app_id=app_id, version=txn_version)],
                ),
            )
            return result
        except CommitFailedError:
            time.sleep(random.uniform(0.01, 0.05) * (1 + attempt))
    raise LakeError(f"gave up appending to {loc.spec.name} after {MAX_ATTEMPTS} concurrent conflicts")


def read(
    table: DeltaTable | None, loc: DeltaLocation, columns: list[str] | None = None, filters: Any = None
) -> pa.Table:
    """Rows of a snapshot (or of the current table when ``table`` is None)."""
    if table is None:
        return loc.read(columns=columns, filters=filters)
    return read_snapshot(table, loc.zone, columns=columns, filters=filters)
