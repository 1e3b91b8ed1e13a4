"""Incremental, header-only archive scan into the restricted catalog table."""

from lakehouse.catalog.sync import SyncResult, sync_catalog
from lakehouse.catalog.table import catalog_stats, read_catalog

__all__ = ["SyncResult", "catalog_stats", "read_catalog", "sync_catalog"]
