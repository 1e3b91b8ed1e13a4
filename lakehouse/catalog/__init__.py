"""Incremental, header-only archive scan into the restricted catalog table.

Exports load on first use (``lakehouse._lazy``): the header-reading worker processes of a
local sync import ``lakehouse.catalog.headers`` without the Delta and Arrow side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse._lazy import lazy_exports

if TYPE_CHECKING:
    from lakehouse.catalog.sync import SyncResult, sync_catalog
    from lakehouse.catalog.table import catalog_stats, read_catalog

__getattr__ = lazy_exports(
    __name__,
    {"SyncResult": "sync", "sync_catalog": "sync", "catalog_stats": "table", "read_catalog": "table"},
)

__all__ = ["SyncResult", "catalog_stats", "read_catalog", "sync_catalog"]
