"""Delta tables: the only package that writes them.

Every table's zone, path, keys and write mode come from ``schemas/tables/<name>.json``;
stages ask for a table by name and call its named operations::

    instances = lake.table(settings, "instances", project="lung-ai")
    instances.commit_once(rows, app_id=..., version=1)      # append / insert-new, once
    lake.table(settings, "catalog").merge(rows)               # upsert on the keys
    lake.table(settings, "audit").append_serialized(app_id, build)
    instances.delete_where(lake.in_list("SOPInstanceUID", uids))  # + vacuum
"""

from lakehouse.config import Settings
from lakehouse.lake.s3 import arrow_filesystem, delta_storage_options
from lakehouse.lake.scan import scan
from lakehouse.lake.schemas import WRITE_MODES, Column, TableSpec, all_table_specs, arrow_type, table_spec
from lakehouse.lake.snapshot import Figures, Snapshot
from lakehouse.lake.tables import Build, Rows, Table, in_list


def table(settings: Settings, name: str, *, project: str | None = None) -> Table:
    """The table ``name`` where its spec puts it (``project`` for per-project tables)."""
    spec = table_spec(name)
    return Table(
        settings.zone(spec.zone),
        spec,
        project=project,
        vacuum_retention_hours=settings.export.vacuum_retention_hours,
    )


__all__ = [
    "WRITE_MODES",
    "Build",
    "Column",
    "Figures",
    "Rows",
    "Snapshot",
    "Table",
    "TableSpec",
    "all_table_specs",
    "arrow_filesystem",
    "arrow_type",
    "delta_storage_options",
    "in_list",
    "scan",
    "table",
    "table_spec",
]
