"""Planning a run: the approved manifest minus opt-outs and what the project holds, in batches,
and the k-anonymity floor over what is left (``export.risk``: generalizations, or a refusal).

A new plan is stored at ``RunLayout.plan`` before the first archive read; a resumed run
reads the same plan back, so its batches (and so its output bytes) are the same.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TypeVar

from lakehouse import governance, lake
from lakehouse.config import Settings
from lakehouse.deid import parse_options, profile_label
from lakehouse.deid.risk import FloorDecision
from lakehouse.errors import Refused
from lakehouse.export import risk
from lakehouse.export.keys import load_project_key
from lakehouse.export.state import RunState, list_runs, save_state
from lakehouse.storage import ObjectStore
from lakehouse.storage.tiers import archive_classes

Entry = TypeVar("Entry")


class FloorRefused(Refused):
    """The cohort's k stays below ``[policy] min_k`` whatever the allowed generalizations do."""

    def __init__(self, request_id: str, decision: FloorDecision) -> None:
        super().__init__(f"request {request_id} may not be exported: {decision.refusal}")
        self.details = decision.audit_fields()


@dataclass(frozen=True)
class Plan:
    """A run's state and its batches of manifest entries (identified: restricted zone only)."""

    state: RunState
    batches: list[list[governance.ManifestEntry]]


def new_plan(
    settings: Settings,
    restricted: ObjectStore,
    request: governance.Request,
    manifest: Sequence[governance.ManifestEntry],
    *,
    user: str,
    engine: str,
    workers: int,
    opted_out: set[str],
) -> Plan:
    """Plan a new run of ``request`` and store its plan and state."""
    options = sorted(parse_options(request.options))
    exported = _exported_profiles(settings, request.project)
    this_profile = (profile_label(), tuple(options))
    entries: list[governance.ManifestEntry] = []
    skipped: Counter[str] = Counter()
    planned_sops: set[str] = set()
    for entry in manifest:
        sop = entry.sop_instance_uid
        if entry.patient_id in opted_out:
            skipped["opted_out"] += 1
        elif sop in exported:
            # One de-identified version per source instance and project: never overwrite an
            # object or duplicate its rows; another profile needs a purge first.
            skipped["already_exported" if exported[sop] == this_profile else "other_profile"] += 1
        elif sop and sop in planned_sops:  # "" (none in the object): each is quarantined on its own
            skipped["duplicate_sop_instance"] += 1  # same SOP Instance UID under another key
        else:
            planned_sops.add(sop)
            entries.append(entry)
    decision = risk.assess(settings, request, entries, load_project_key(settings, request.project))
    if decision.refusal:
        raise FloorRefused(request.id, decision)
    batches = readable_first(settings, entries, workers)
    state = RunState(
        run_id=f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
        request_id=request.id,
        project=request.project,
        engine=engine,
        user=user,
        planned_objects=len(entries),
        skipped_already_exported=skipped["already_exported"],
        skipped_other_profile=skipped["other_profile"],
        skipped_duplicate_sop_instance=skipped["duplicate_sop_instance"],
        skipped_opted_out=skipped["opted_out"],
        batches=len(batches),
        risk=decision.to_dict(),
    )
    stored = {"batches": [[asdict(e) for e in batch] for batch in batches]}
    restricted.put(state.layout.plan, json.dumps(stored).encode())
    save_state(restricted, state)
    return Plan(state, batches)


def unfinished_plan(restricted: ObjectStore, request_id: str, engine: str) -> Plan | None:
    """The request's unfinished run and its plan, or None when there is none to resume.

    The plan is resumed as it was even when a patient in it opted out meanwhile: part of the
    run may be committed already, and the publish point withholds that patient's outputs."""
    runs = list_runs(restricted, request_id)
    if not runs or not runs[-1].active:
        return None
    previous = runs[-1]
    stored = json.loads(restricted.get(previous.layout.plan))["batches"]
    previous.attempts += 1
    previous.engine = engine
    return Plan(previous, [[governance.ManifestEntry(**e) for e in batch] for batch in stored])


def readable_first(
    settings: Settings, entries: list[governance.ManifestEntry], workers: int
) -> list[list[governance.ManifestEntry]]:
    """The run's batches: readable objects first, archived ones (read once restored) after and
    never in the same batch, so a batch that waits for restores holds up no readable object.
    Whole studies stay together and the order is stable, so batches are reproducible."""
    archived = archived_keys(settings)
    size = settings.export.batch_size
    readable = sorted((e for e in entries if e.key not in archived), key=_in_study_order)
    restored = sorted((e for e in entries if e.key in archived), key=_in_study_order)
    return split_batches(readable, size, workers) + split_batches(restored, size, workers)


def archived_keys(settings: Settings) -> set[str]:
    """Archive keys the catalog last saw in a storage class that needs a restore before a GET."""
    if not settings.archive.is_s3:
        return set()
    rows = lake.table(settings, "catalog").read(
        columns=["key"], filters=[("storage_class", "in", list(archive_classes())), ("deleted", "=", False)]
    )
    return set(rows.column("key").to_pylist())


def _in_study_order(entry: governance.ManifestEntry) -> tuple[str, str, str]:
    return (entry.study_instance_uid or "", entry.series_instance_uid or "", entry.key)


def split_batches(entries: list[Entry], batch_size: int, workers: int) -> list[list[Entry]]:
    """Consecutive batches of at most ``batch_size`` entries, as even as possible, and a multiple
    of ``workers`` in number when there is enough work: no worker sits idle for the last batch."""
    if not entries:
        return []
    count = -(-len(entries) // max(1, batch_size))
    if count > 1:
        count = min(len(entries), -(-count // max(1, workers)) * max(1, workers))
    base, extra = divmod(len(entries), count)
    bounds = [i * base + min(i, extra) for i in range(count + 1)]
    return [entries[bounds[i] : bounds[i + 1]] for i in range(count)]


def exported_sops(settings: Settings, project: str) -> set[str]:
    """Source SOP Instance UIDs the project holds already: no run reads them again."""
    return set(_exported_profiles(settings, project))


def _exported_profiles(settings: Settings, project: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Source SOP Instance UID → (profile, options) of what the project already holds."""
    lineage = lake.table(settings, "lineage").read(
        columns=["source_sop_instance_uid", "deid_profile", "deid_options"],
        filters=[("project", "=", project)],
    )
    return {
        row["source_sop_instance_uid"]: (row["deid_profile"], tuple(row["deid_options"]))
        for row in lineage.to_pylist()
    }
