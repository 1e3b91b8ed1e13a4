"""Delta tables: schemas as data, idempotent commits, reads."""

from lakehouse.lake.schemas import Column, TableSpec, all_table_specs, arrow_type, table_spec
from lakehouse.lake.tables import DeltaLocation, read_snapshot

__all__ = ["Column", "DeltaLocation", "TableSpec", "all_table_specs", "arrow_type", "read_snapshot", "table_spec"]
