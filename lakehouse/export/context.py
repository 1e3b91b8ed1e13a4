"""What every step of one export run shares, built once by ``run_export``.

The steps (execute, gate, publish, commit) take a ``RunContext`` instead of a
long list of arguments: the settings, the restricted and research stores, the
run's state and layout, the approved request, the operator's options, the
project's lease (checked before every write of the run) and the project's key
material (inside ``deid``, never in a repr).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.deid import DeidSettings, parse_options, profile_label
from lakehouse.export.keys import load_project_key
from lakehouse.export.layout import RunLayout
from lakehouse.export.lease import Lease
from lakehouse.export.results import BatchSummary
from lakehouse.export.state import RunState, save_state
from lakehouse.export.worker import read_parquet_bytes
from lakehouse.flatten import Provenance
from lakehouse.storage import ObjectStore, open_zone


@dataclass(frozen=True)
class RunOptions:
    """How the operator runs the export: engine, local pool size, Spark session, progress."""

    engine: str
    workers: int
    spark: Any = None
    progress: Callable[[int], None] | None = None

    def advance(self, objects: int) -> None:
        if self.progress:
            self.progress(objects)


@dataclass(frozen=True, repr=False)
class RunContext:
    settings: Settings
    restricted: ObjectStore
    research: ObjectStore
    state: RunState  # mutable: the steps record counts, versions and failures in it
    request: governance.Request
    options: RunOptions
    user: str
    lease: Lease
    deid: DeidSettings  # carries the project key
    provenance: Provenance

    @classmethod
    def open(
        cls,
        settings: Settings,
        request: governance.Request,
        state: RunState,
        options: RunOptions,
        user: str,
        lease: Lease,
    ) -> RunContext:
        """The context of ``state``'s run; looks up the project key."""
        deid_options = parse_options(request.options)
        return cls(
            settings=settings,
            restricted=open_zone(settings, "restricted"),
            research=open_zone(settings, "research"),
            state=state,
            request=request,
            options=options,
            user=user,
            lease=lease,
            deid=DeidSettings(
                project=state.project, key=load_project_key(settings, state.project), options=deid_options,
                generalizations=tuple(state.risk["generalizations"]) if state.risk else (),
            ),
            provenance=Provenance(
                export_run_id=state.run_id,
                request_id=state.request_id,
                project=state.project,
                profile=profile_label(),
                options=tuple(sorted(deid_options)),
            ),
        )

    def __repr__(self) -> str:
        return f"RunContext(run={self.state.run_id}, engine={self.options.engine})"

    @property
    def layout(self) -> RunLayout:
        return self.state.layout

    def save(self) -> None:
        """Store the run's state, only while this process holds the project's lease."""
        self.lease.ensure()
        save_state(self.restricted, self.state)

    def summaries(self) -> list[BatchSummary]:
        """Every batch's summary (all batches are done)."""
        return [BatchSummary.from_json(self.restricted.get(self.layout.marker(i))) for i in range(self.state.batches)]

    def staged_table(self, table: str, batch: int) -> pa.Table:
        return read_parquet_bytes(self.restricted.get(self.layout.staged(table, batch)))

    def staged_tables(self, table: str) -> Iterator[pa.Table]:
        """One staged table of every batch, read one at a time (memory does not grow with the run)."""
        for batch in range(self.state.batches):
            yield self.staged_table(table, batch)
