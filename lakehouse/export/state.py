"""Export run state, kept in the restricted zone under ``exports/<run_id>/``.

Layout (all restricted; the staged research rows carry no identifiers, the
batch markers carry the source identifiers the gate must not find):

    exports/<run_id>/state.json                  RunState (status, counts, versions)
    exports/<run_id>/plan.json                   the batches (manifest entries)
    exports/<run_id>/staged/<table>/b-00000.parquet
    exports/<run_id>/staged/_done/b-00000.json   BatchSummary: written last = batch done
    exports/<run_id>/gate-report.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse.errors import LakehouseError
from lakehouse.storage import ObjectStore

RUNS_PREFIX = "exports"

# A run moves planned → running → committing → succeeded, or ends failed/refused.
ACTIVE_STATUSES = ("planned", "running", "committing")


def run_prefix(run_id: str) -> str:
    return f"{RUNS_PREFIX}/{run_id}"


def batch_name(index: int) -> str:
    return f"b-{index:05d}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunState:
    run_id: str
    request_id: str
    project: str
    engine: str
    user: str
    status: str = "planned"
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    planned_objects: int = 0
    skipped_already_exported: int = 0
    skipped_other_profile: int = 0
    skipped_duplicate_sop_instance: int = 0
    skipped_opted_out: int = 0
    batches: int = 0
    exported: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    table_versions: dict[str, int | None] = field(default_factory=dict)
    gate_report: str | None = None
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objects_per_second"] = round(self.exported / self.seconds, 2) if self.seconds else None
        data["quarantined_total"] = sum(self.quarantined.values())
        return data


def save_state(store: ObjectStore, state: RunState) -> None:
    store.put(f"{run_prefix(state.run_id)}/state.json", json.dumps(state.to_dict(), indent=2).encode())


def load_state(store: ObjectStore, run_id: str) -> RunState:
    from lakehouse.errors import ObjectNotFound

    try:
        data = json.loads(store.get(f"{run_prefix(run_id)}/state.json"))
    except ObjectNotFound:
        raise LakehouseError(f"no export run {run_id!r}") from None
    data.pop("objects_per_second", None)
    data.pop("quarantined_total", None)
    return RunState(**data)


def list_runs(store: ObjectStore, request_id: str | None = None) -> list[RunState]:
    states = []
    for info in store.list(f"{RUNS_PREFIX}/"):
        if info.key.endswith("/state.json") and info.key.count("/") == 2:
            state = load_state(store, info.key.split("/")[1])
            if request_id is None or state.request_id == request_id:
                states.append(state)
    return sorted(states, key=lambda s: (s.started_at, s.run_id))
