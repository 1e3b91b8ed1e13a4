"""Batches of flattened rows → Arrow tables in the research schemas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from lakehouse.flatten.columns import RESEARCH_TABLES
from lakehouse.flatten.rows import FlatRows
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
    instances: list[dict[str, Any]] = []
    attributes: list[dict[str, Any]] = []
    for flat in ordered:
        studies.setdefault(flat.study["StudyInstanceUID"], flat.study)
        series.setdefault(flat.series["SeriesInstanceUID"], flat.series)
        instances.append(flat.instance)
        attributes.extend(flat.attributes)
    by_table = {
        "studies": [studies[k] for k in sorted(studies)],
        "series": [series[k] for k in sorted(series)],
        "instances": instances,
        "attributes": attributes,
    }
    return {name: table_spec(name).to_arrow(by_table[name]) for name in RESEARCH_TABLES}
