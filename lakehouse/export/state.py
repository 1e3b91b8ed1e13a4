"""Export run state, kept in the restricted zone at ``RunLayout.state``.

``RunState.to_dict`` is the one serializer of a run: ``export run``, ``export status``
and ``export list`` print it, and ``state.json`` stores it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse.errors import LakehouseError, ObjectNotFound
from lakehouse.export.errors import StageFailure
from lakehouse.export.layout import RUNS_PREFIX, RunLayout, run_id_of_state_key, state_key
from lakehouse.export.results import BatchSummary
from lakehouse.storage import ObjectStore

# A run moves planned → running → committing → succeeded, or ends failed; or it ends as its
# request became (revoked, expired) before it published anything, or voided by a purge. A run
# with batches no GET can read yet (archived objects not restored) waits, resumable, in
# ``waiting_for_restore`` until `export run` finds them readable.
ACTIVE_STATUSES = ("planned", "running", "committing", "waiting_for_restore")
VOIDED_STATUSES = ("revoked", "expired", "voided")
# Figures derived from the stored fields: in every serialized run, never read back.
DERIVED_FIELDS = ("objects_per_second", "quarantined_total", "resumed")


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
    withheld_opted_out: int = 0  # staged, then left out at the publish point: opted out meanwhile
    batches: int = 0
    exported: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    table_versions: dict[str, int | None] = field(default_factory=dict)
    gate_report: str | None = None
    error: StageFailure | None = None
    attempts: int = 1
    audit_head: str | None = None  # the audit chain head after the run's latest event: a checkpoint
    # Objects the latest attempt found unreadable for now, per reason (``storage.tiers``), and
    # the batches that wait for them; kept when the request expires meanwhile: the report.
    waiting: dict[str, int] = field(default_factory=dict)
    waiting_batches: int = 0
    # k-anonymity of what the run publishes and the generalizations it applies (counts only;
    # ``lakehouse.deid.risk.FloorDecision.to_dict``); fixed at planning, so a resumed run keeps it.
    risk: dict[str, Any] | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_id, self.project)

    @property
    def resumed(self) -> bool:
        """The latest attempt picked up an unfinished run."""
        return self.attempts > 1

    @property
    def active(self) -> bool:
        """Unfinished: under way, or failed at a stage a re-run resumes from (all but the
        gate's verdict, which withheld the run's data for good)."""
        if self.status == "failed":
            return self.error is not None and self.error.stage != "gate"
        return self.status in ACTIVE_STATUSES

    def count(self, summaries: Iterable[BatchSummary], withheld: int = 0) -> None:
        """Set the run's totals from its batches' summaries, less what the publish point withheld."""
        summaries = list(summaries)
        quarantined: Counter[str] = Counter()
        for summary in summaries:
            quarantined.update(summary.quarantined)
        self.exported = sum(s.exported for s in summaries) - withheld
        self.withheld_opted_out = withheld
        self.quarantined = dict(sorted(quarantined.items()))
        self.bytes_read = sum(s.bytes_read for s in summaries)
        self.bytes_written = sum(s.bytes_written for s in summaries)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objects_per_second"] = round(self.exported / self.seconds, 2) if self.seconds else None
        data["quarantined_total"] = sum(self.quarantined.values())
        data["resumed"] = self.resumed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        stored = {k: v for k, v in data.items() if k not in DERIVED_FIELDS}
        error = stored.pop("error", None)
        return cls(**stored, error=StageFailure.from_dict(error) if error else None)


def save_state(store: ObjectStore, state: RunState) -> None:
    store.put(state.layout.state, json.dumps(state.to_dict(), indent=2).encode())


def load_state(store: ObjectStore, run_id: str) -> RunState:
    try:
        data = json.loads(store.get(state_key(run_id)))
    except ObjectNotFound:
        raise LakehouseError(f"no export run {run_id!r}") from None
    return RunState.from_dict(data)


def list_runs(store: ObjectStore, request_id: str | None = None) -> list[RunState]:
    """The runs (of one request, or all), oldest first."""
    states = []
    for info in store.list(f"{RUNS_PREFIX}/"):
        run_id = run_id_of_state_key(info.key)
        if run_id is not None:
            state = load_state(store, run_id)
            if request_id is None or state.request_id == request_id:
                states.append(state)
    return sorted(states, key=lambda s: (s.started_at, s.run_id))
