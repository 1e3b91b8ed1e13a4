"""Publish a fully staged, gated export run: exactly once, and purgeable at every step.

Right before this the run re-checked its request (``run``); what patients opted out since
the plan staged is withheld here (``Withheld``): their staged objects are deleted and their
rows left out of every table.

The order makes everything published findable by a purge whatever crashes: lineage first
(restricted; it is how a purge finds a run's outputs), then the objects move from staging
to their published keys, then the research tables, then quarantine. Every Delta commit of a
run carries the application transaction ``(lakehouse-export/<run_id>, 1)``; a table that
already holds it is skipped, and moves are idempotent, so a run killed anywhere in here and
started again finishes only the missing steps: no duplicate and no lost rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import lake
from lakehouse.export.context import RunContext
from lakehouse.export.errors import stage
from lakehouse.export.worker import RESEARCH_TABLES, RESTRICTED_TABLES

# The column by which each table's rows are withheld, and which ``Withheld`` set holds its values.
_WITHHELD_BY = {
    "lineage": ("output_key", "output_keys"),
    "studies": ("StudyInstanceUID", "studies"),
    "series": ("SeriesInstanceUID", "series"),
    "instances": ("SOPInstanceUID", "sops"),
    "attributes": ("SOPInstanceUID", "sops"),
}


def txn_app_id(run_id: str) -> str:
    return f"lakehouse-export/{run_id}"


@dataclass(frozen=True)
class Withheld:
    """Staged outputs the publish point leaves out: those of patients opted out since the plan.
    A study or series goes only when none of its staged instances is kept."""

    output_keys: frozenset[str] = frozenset()
    sops: frozenset[str] = frozenset()
    series: frozenset[str] = frozenset()
    studies: frozenset[str] = frozenset()

    @classmethod
    def of(cls, ctx: RunContext, opted_out: set[str]) -> Withheld:
        withheld: list[dict[str, str]] = []
        kept_series: set[str] = set()
        kept_studies: set[str] = set()
        columns = ["source_patient_id", "output_key", "sop_instance_uid", "series_instance_uid", "study_instance_uid"]
        for lineage in ctx.staged_tables("lineage"):
            for row in lineage.select(columns).to_pylist():
                if row["source_patient_id"] in opted_out:
                    withheld.append(row)
                else:
                    kept_series.add(row["series_instance_uid"])
                    kept_studies.add(row["study_instance_uid"])
        return cls(
            output_keys=frozenset(r["output_key"] for r in withheld),
            sops=frozenset(r["sop_instance_uid"] for r in withheld),
            series=frozenset(r["series_instance_uid"] for r in withheld) - kept_series,
            studies=frozenset(r["study_instance_uid"] for r in withheld) - kept_studies,
        )

    def __len__(self) -> int:
        return len(self.output_keys)

    def rows(self, table: str, staged: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The staged rows of ``table`` that are published."""
        column, attribute = _WITHHELD_BY.get(table, ("", ""))
        values: frozenset[str] = getattr(self, attribute) if attribute else frozenset()
        for rows in staged:
            if not values or rows.num_rows == 0:
                yield rows
            else:
                left_out = pa.array(sorted(values), type=rows.schema.field(column).type)
                yield rows.filter(pc.invert(pc.is_in(rows.column(column), value_set=left_out)))


def publish(ctx: RunContext, withheld: Withheld, checkpoint: Callable[[str], None]) -> dict[str, int | None]:
    """Lineage, objects, research tables, quarantine; returns each table's version after the run."""
    versions: dict[str, int | None] = {}
    with stage("commit"):
        versions["lineage"] = _commit(ctx, "lineage", withheld)
    checkpoint("after_commit:lineage")
    with stage("publish"):
        _publish_objects(ctx, withheld)
    checkpoint("after_publish")
    for name in (*RESEARCH_TABLES, "quarantine"):
        with stage("commit"):
            versions[name] = _commit(ctx, name, withheld)
        checkpoint(f"after_commit:{name}")
    return {name: versions[name] for name in RESEARCH_TABLES + RESTRICTED_TABLES}


def _publish_objects(ctx: RunContext, withheld: Withheld) -> None:
    """Move the run's staged objects to their published keys; delete the withheld (idempotent)."""
    ctx.lease.ensure()
    for lineage in ctx.staged_tables("lineage"):
        for out_key in lineage.column("output_key").to_pylist():
            staged = ctx.layout.staging_object(out_key)
            if out_key in withheld.output_keys:
                ctx.research.delete(staged)
            else:
                ctx.research.move(staged, out_key)


def _commit(ctx: RunContext, name: str, withheld: Withheld) -> int | None:
    """Commit one staged table once, by its own write mode (append, or insert-new for rows that
    runs share); a table that already holds the run is skipped."""
    state = ctx.state
    per_project = lake.table_spec(name).per_project
    table = lake.table(ctx.settings, name, project=state.project if per_project else None)
    metadata = {"lakehouse.export_run_id": state.run_id, "lakehouse.request_id": state.request_id}
    ctx.lease.ensure()
    table.commit_once(
        withheld.rows(name, ctx.staged_tables(name)), app_id=txn_app_id(state.run_id), version=1, metadata=metadata
    )
    return table.version()
