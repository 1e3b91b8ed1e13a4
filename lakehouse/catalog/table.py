"""Reads of the catalog Delta table (where it lives and how it is written: ``schemas/tables/catalog.json``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import lake
from lakehouse.config import Settings


def read_catalog(settings: Settings, *, include_deleted: bool = False) -> pa.Table:
    """Current catalog rows (live objects only unless ``include_deleted``)."""
    table = lake.table(settings, "catalog").read()
    if include_deleted or table.num_rows == 0:
        return table
    return table.filter(pc.invert(table["deleted"]))


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
