"""Gate, publish and commit a fully staged export run — exactly once.

Every Delta commit of a run carries the application transaction
``(lakehouse-export/<run_id>, 1)``. Before committing a table the run asks the
table for that transaction's version; if it is there, that table already holds
the run and is skipped. A run killed anywhere in here and started again
therefore finishes the missing commits only: no duplicate and no lost rows.
Objects are moved from the run's staging prefix to their published keys before
the tables commit; moves are idempotent too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.errors import LakeError
from lakehouse.export.state import RunState, run_prefix
from lakehouse.export.worker import (
    RESEARCH_TABLES,
    RESTRICTED_TABLES,
    gate_key,
    marker_key,
    read_parquet_bytes,
    staged_key,
    staging_object_key,
)
from lakehouse.lake import DeltaLocation, table_spec
from lakehouse.storage import ObjectStore, open_zone

# Tables whose rows are shared between runs and requests: inserted only when new.
MERGE_KEYS = {"studies": ("StudyInstanceUID",), "series": ("SeriesInstanceUID",)}
INSTANCE_KEY = "SOPInstanceUID"


class GateFailed(LakeError):
    """The quality gate withheld the commit; ``report_key`` names the report."""

    def __init__(self, message: str, report_key: str) -> None:
        super().__init__(message)
        self.report_key = report_key


def txn_app_id(run_id: str) -> str:
    return f"lakehouse-export/{run_id}"


def research_location(settings: Settings, project: str, table: str) -> DeltaLocation:
    return DeltaLocation(settings.research, f"{project}/tables/{table}", table_spec(table))


def restricted_location(settings: Settings, table: str) -> DeltaLocation:
    return DeltaLocation(settings.restricted, table, table_spec(table))


def read_markers(restricted: ObjectStore, run_id: str, batches: int) -> list[dict[str, Any]]:
    return [json.loads(restricted.get(marker_key(run_id, i))) for i in range(batches)]


def _staged_tables(restricted: ObjectStore, run_id: str, table: str, batches: int) -> Iterator[pa.Table]:
    for i in range(batches):
        yield read_parquet_bytes(restricted.get(staged_key(run_id, table, i)))


def gate_batch(restricted: ObjectStore, run_id: str, marker: dict[str, Any]) -> dict[str, Any]:
    """The quality gate of one staged batch (run once, then read back: a resumed run does not
    validate a batch again). ``marker`` is the batch's summary from the worker."""
    from lakehouse.quality import run_gate  # Great Expectations: seconds to import, driver only

    key = gate_key(run_id, marker["batch"])
    if restricted.exists(key):
        return dict(json.loads(restricted.get(key)))
    tables = {
        name: read_parquet_bytes(restricted.get(staged_key(run_id, name, marker["batch"])))
        for name in RESEARCH_TABLES
    }
    result = run_gate(tables, forbidden_values=set(marker["forbidden"]), expected_instances=marker["exported"])
    gate = {"passed": result.passed, "failures": result.failures, "report": result.report}
    restricted.put(key, json.dumps(gate, default=str).encode())
    return gate


def check_gate(settings: Settings, state: RunState, markers: list[dict[str, Any]]) -> str:
    """Combine the batches' gate results with the run-wide checks; write the report.

    Returns the report's key in the restricted zone; raises GateFailed when any check failed.
    """
    restricted = open_zone(settings, "restricted")
    failures: list[str] = []
    gates = [gate_batch(restricted, state.run_id, m) for m in markers]
    for m, gate in zip(markers, gates, strict=True):
        failures += [f"batch {m['batch']}: {f}" for f in gate["failures"]]
    seen: set[str] = set()
    duplicates = 0
    for table in _staged_tables(restricted, state.run_id, "instances", state.batches):
        for uid in table.column(INSTANCE_KEY).to_pylist():
            duplicates += uid in seen
            seen.add(uid)
    if duplicates:
        failures.append(f"instances: {duplicates} SOPInstanceUID values repeat across batches")
    exported = sum(m["exported"] for m in markers)
    if len(seen) + duplicates != exported:
        failures.append(f"instances: {len(seen) + duplicates} rows, expected {exported} (manifest minus quarantine)")
    report = {
        "run_id": state.run_id,
        "request_id": state.request_id,
        "passed": not failures,
        "failures": failures,
        "batches": [{"batch": m["batch"], **gate["report"]} for m, gate in zip(markers, gates, strict=True)],
    }
    key = f"{run_prefix(state.run_id)}/gate-report.json"
    restricted.put(key, json.dumps(report, indent=2, default=str).encode())
    if failures:
        raise GateFailed(f"quality gate failed ({len(failures)} checks); report: {key}", key)
    return key


def publish_objects(settings: Settings, state: RunState) -> None:
    """Move the run's staged objects to their published keys (idempotent)."""
    research = open_zone(settings, "research")
    restricted = open_zone(settings, "restricted")
    for lineage in _staged_tables(restricted, state.run_id, "lineage", state.batches):
        for out_key in lineage.column("output_key").to_pylist():
            research.move(staging_object_key(state.project, state.run_id, out_key), out_key)


def commit_tables(
    settings: Settings, state: RunState, checkpoint: Callable[[str], None] = lambda _: None
) -> dict[str, int | None]:
    """Commit every staged table once; returns each table's version after the run."""
    restricted = open_zone(settings, "restricted")
    app_id = txn_app_id(state.run_id)
    metadata = {"lakehouse.export_run_id": state.run_id, "lakehouse.request_id": state.request_id}
    versions: dict[str, int | None] = {}
    for name in RESEARCH_TABLES + RESTRICTED_TABLES:
        location = (
            research_location(settings, state.project, name)
            if name in RESEARCH_TABLES
            else restricted_location(settings, name)
        )
        done = location.transaction_version(app_id)
        if done is None or done < 1:
            if name in MERGE_KEYS:
                staged = list(_staged_tables(restricted, state.run_id, name, state.batches))
                _merge_new(location, staged, MERGE_KEYS[name], app_id, metadata)
            else:
                _append_streamed(location, restricted, state, app_id, metadata)
        versions[name] = location.version()
        checkpoint(f"after_commit:{name}")
    return versions


def _append_streamed(
    location: DeltaLocation, restricted: ObjectStore, state: RunState, app_id: str, metadata: dict[str, Any]
) -> None:
    """Append every staged batch in one commit, reading one staged file at a time so the
    driver's memory does not grow with the run (the attributes table is the large one)."""
    assert location.spec is not None
    spec = location.spec

    def batches() -> Iterator[pa.RecordBatch]:
        for table in _staged_tables(restricted, state.run_id, spec.name, state.batches):
            yield from spec.conform(table).to_batches()

    reader = pa.RecordBatchReader.from_batches(spec.arrow_schema, batches())
    location.append(reader, app_id=app_id, version=1, metadata=metadata, schema_mode="merge")


def _merge_new(
    location: DeltaLocation,
    staged: list[pa.Table],
    keys: tuple[str, ...],
    app_id: str,
    metadata: dict[str, Any],
) -> None:
    """Insert rows whose key is not in the table yet (first row per key wins)."""
    from deltalake import CommitProperties, Transaction

    assert location.spec is not None
    tables = [location.spec.conform(t) for t in staged if t.num_rows]
    data = pa.concat_tables(tables) if tables else location.spec.arrow_schema.empty_table()
    if data.num_rows:
        seen: set[tuple[Any, ...]] = set()
        first = []
        for row_key in zip(*(data.column(k).to_pylist() for k in keys), strict=True):
            first.append(row_key not in seen)
            seen.add(row_key)
        data = data.filter(pa.array(first))
    table = location.create()
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    (
        table.merge(
            data,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=CommitProperties(
                custom_metadata=metadata, app_transactions=[Transaction(app_id=app_id, version=1)]
            ),
        )
        .when_not_matched_insert_all()
        .execute()
    )


def discard_staging(settings: Settings, state: RunState) -> None:
    """Remove the run's staged objects and files (after success or failure)."""
    research = open_zone(settings, "research")
    for info in list(research.list(f"{state.project}/_staging/{state.run_id}/")):
        research.delete(info.key)
    restricted = open_zone(settings, "restricted")
    for info in list(restricted.list(f"{run_prefix(state.run_id)}/staged/")):
        if "/_done/" not in info.key:
            restricted.delete(info.key)
