"""Publish and commit a fully staged, gated export run — exactly once.

Every Delta commit of a run carries the application transaction
``(lakehouse-export/<run_id>, 1)``. Before committing a table the run asks the
table for that transaction's version; if it is there, that table already holds
the run and is skipped. A run killed anywhere in here and started again
therefore finishes the missing commits only: no duplicate and no lost rows.
Objects are moved from the run's staging prefix to their published keys before
the tables commit; moves are idempotent too.
"""

from __future__ import annotations

from collections.abc import Callable

from lakehouse import lake
from lakehouse.export.context import RunContext
from lakehouse.export.worker import RESEARCH_TABLES, RESTRICTED_TABLES


def txn_app_id(run_id: str) -> str:
    return f"lakehouse-export/{run_id}"


def publish_objects(ctx: RunContext) -> None:
    """Move the run's staged objects to their published keys (idempotent)."""
    for lineage in ctx.staged_tables("lineage"):
        for out_key in lineage.column("output_key").to_pylist():
            ctx.research.move(ctx.layout.staging_object(out_key), out_key)


def commit_tables(ctx: RunContext, checkpoint: Callable[[str], None] = lambda _: None) -> dict[str, int | None]:
    """Commit every staged table once; returns each table's version after the run."""
    state = ctx.state
    app_id = txn_app_id(state.run_id)
    metadata = {"lakehouse.export_run_id": state.run_id, "lakehouse.request_id": state.request_id}
    versions: dict[str, int | None] = {}
    for name in RESEARCH_TABLES + RESTRICTED_TABLES:
        per_project = lake.table_spec(name).per_project
        table = lake.table(ctx.settings, name, project=state.project if per_project else None)
        # Each table takes the run's rows by its own write mode (append, or insert-new for the
        # rows runs share), at most once: a table that already holds the run is skipped.
        table.commit_once(ctx.staged_tables(name), app_id=app_id, version=1, metadata=metadata)
        versions[name] = table.version()
        checkpoint(f"after_commit:{name}")
    return versions


def discard_staging(ctx: RunContext) -> None:
    """Remove the run's staged objects and files, keeping the batch markers (after success
    or a failed gate)."""
    for info in list(ctx.research.list(ctx.layout.staging_prefix)):
        ctx.research.delete(info.key)
    for info in list(ctx.restricted.list(ctx.layout.staged_prefix)):
        if not ctx.layout.is_marker(info.key):
            ctx.restricted.delete(info.key)
