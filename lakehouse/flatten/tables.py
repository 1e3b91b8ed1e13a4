"""Batches of flattened rows → Arrow tables in the research schemas."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.flatten.rows import ATTRIBUTE_ROW_COLUMNS, FlatRows
from lakehouse.lake.schemas import table_spec


def rows_to_tables(rows: Iterable[FlatRows]) -> dict[str, pa.Table]:
    """One Arrow table per research table ("studies", "series", "instances", "attributes").

    Output is deterministic whatever order the rows arrive in (process pool or Spark):
    instances are ordered by SOPInstanceUID, and a study or series seen in several
    instances of the batch takes its row from the instance with the smallest
    SOPInstanceUID. Duplicate instances are kept, for the quality gate to refuse.
    """
    ordered = sorted(rows, key=lambda r: str(r.instance["SOPInstanceUID"]))
    studies: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, Any]] = {}
    for flat in ordered:
        studies.setdefault(flat.study["StudyInstanceUID"], flat.study)
        series.setdefault(flat.series["SeriesInstanceUID"], flat.series)
    return {
        "studies": _table("studies", [studies[k] for k in sorted(studies)]),
        "series": _table("series", [series[k] for k in sorted(series)]),
        "instances": _table("instances", [flat.instance for flat in ordered]),
        "attributes": _attributes_table(ordered),
    }


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) → a table in the schema of ``name``, built column by column (missing keys
    become nulls, as in ``TableSpec.to_arrow``, which converts row by row and is slower)."""
    schema = table_spec(name).arrow_schema
    arrays = [pa.array([row.get(field.name) for row in rows], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _attributes_table(ordered: list[FlatRows]) -> pa.Table:
    """Per-element columns are concatenated; the columns each instance shares (its key,
    provenance) are built once per instance and repeated with ``take``."""
    schema = table_spec("attributes").arrow_schema
    counts = [len(flat.attribute_columns["path"]) for flat in ordered]
    owner = pa.array(np.repeat(np.arange(len(ordered), dtype=np.int64), counts))
    arrays = []
    for field in schema:
        if field.name in ATTRIBUTE_ROW_COLUMNS:
            values = list(chain.from_iterable(flat.attribute_columns[field.name] for flat in ordered))
            arrays.append(pa.array(values, type=field.type))
        else:
            shared = pa.array([flat.attribute_base.get(field.name) for flat in ordered], type=field.type)
            arrays.append(shared.take(owner))
    return pa.Table.from_arrays(arrays, schema=schema)
