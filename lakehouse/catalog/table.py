"""The catalog Delta table at ``<restricted>/catalog``: location, reads, upserts, stats."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties

from lakehouse.config import Settings
from lakehouse.lake import DeltaLocation, table_spec

CATALOG_PATH = "catalog"


def catalog_location(settings: Settings) -> DeltaLocation:
    """The identified catalog; it lives only in the restricted zone."""
    return DeltaLocation(settings.restricted, CATALOG_PATH, table_spec("catalog"))


def read_catalog(settings: Settings, *, include_deleted: bool = False) -> pa.Table:
    """Current catalog rows (live objects only unless ``include_deleted``)."""
    table = catalog_location(settings).read()
    if include_deleted or table.num_rows == 0:
        return table
    return table.filter(pc.invert(table["deleted"]))


def upsert_rows(location: DeltaLocation, rows: list[dict[str, Any]], metadata: dict[str, Any]) -> None:
    """Insert or replace rows by ``key`` in one atomic Delta commit (a MERGE).

    Replaying the same rows gives the same table, so a sync killed after some
    commits and re-run converges to the same state."""
    if not rows:
        return
    assert location.spec is not None
    source = location.spec.to_arrow(rows)
    table = location.create()
    (
        table.merge(
            source,
            predicate="t.key = s.key",
            source_alias="s",
            target_alias="t",
            commit_properties=CommitProperties(custom_metadata={k: str(v) for k, v in metadata.items()}),
        )
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def catalog_stats(settings: Settings) -> dict[str, Any]:
    """Counts over live objects: patients, studies, series, instances, bytes, per modality/status."""
    everything = read_catalog(settings, include_deleted=True)
    live = everything.filter(pc.invert(everything["deleted"])) if everything.num_rows else everything

    def distinct(column: str) -> int:
        return int(pc.count_distinct(live[column]).as_py()) if live.num_rows else 0

    def counts(column: str) -> dict[str, int]:
        if not live.num_rows:
            return {}
        values = pc.fill_null(live[column], "(none)").value_counts()
        return {str(v["values"]): int(v["counts"]) for v in values.to_pylist()}

    return {
        "objects": live.num_rows,
        "patients": distinct("patient_id"),
        "studies": distinct("study_instance_uid"),
        "series": distinct("series_instance_uid"),
        "instances": distinct("sop_instance_uid"),
        "bytes": int(pc.sum(live["size"]).as_py() or 0) if live.num_rows else 0,
        "header_bytes_read": int(pc.sum(live["header_bytes_read"]).as_py() or 0) if live.num_rows else 0,
        "duplicate_objects": int(pc.sum(live["duplicate_sop_instance"].cast(pa.int64())).as_py() or 0)
        if live.num_rows
        else 0,
        "deleted_objects": everything.num_rows - live.num_rows,
        "per_modality": counts("modality"),
        "per_parse_status": counts("parse_status"),
    }
