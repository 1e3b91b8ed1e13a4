"""The k-anonymity floor of a run, decided when it is planned (before the first archive read).

Measured over the catalog rows of exactly the objects the run will read, as the
de-identification will write them (shifted years included: the driver holds the key). The
decision (the generalizations, or a refusal) is stored with the run's state, so a resumed run
applies the same generalizations and writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.config import Settings
from lakehouse.deid.risk import FloorDecision
from lakehouse.governance import ManifestEntry, Request
from lakehouse.governance.cohort import read_catalog
from lakehouse.governance.risk import cohort_risk


def assess(settings: Settings, request: Request, entries: Sequence[ManifestEntry], key: bytes) -> FloorDecision:
    keys = pa.array(sorted({entry.key for entry in entries}), pa.string())
    catalog = read_catalog(settings)
    rows = catalog.filter(pc.is_in(catalog["key"], keys)) if len(keys) else catalog.slice(0, 0)
    return cohort_risk(settings, rows, request.options, key=key)
