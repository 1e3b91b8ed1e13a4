"""The export job: refuse or plan → execute batches → gate → publish → commit.

A run is resumable: ``run_export`` on a request whose last run did not finish
picks that run up again (same run id, same plan), redoes only unfinished
batches and commits only what is not committed yet.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lakehouse import governance, quality
from lakehouse.config import Settings
from lakehouse.deid import DeidSettings, parse_options, profile_label
from lakehouse.deid.keys import load_project_key
from lakehouse.errors import LakehouseError, Refused
from lakehouse.export import commit, engines
from lakehouse.export.state import (
    ACTIVE_STATUSES,
    RunState,
    list_runs,
    load_state,
    run_prefix,
    save_state,
)
from lakehouse.export.worker import BatchTask, marker_key, use_system_allocator
from lakehouse.flatten import Provenance
from lakehouse.storage import ObjectStore, open_zone

FAULT_ENV = "LAKEHOUSE_FAULT_KILL_AT"


def checkpoint(name: str) -> None:
    """Fault injection for the kill-and-resume tests: ``LAKEHOUSE_FAULT_KILL_AT=<name>``
    makes the process kill itself with SIGKILL at that point, exactly like ``kill -9``."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class ExportOutcome:
    state: RunState
    resumed: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "resumed": self.resumed}


def run_export(
    settings: Settings,
    request_id: str,
    *,
    user: str,
    engine: str = "local",
    workers: int | None = None,
    spark: Any = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> ExportOutcome:
    """Run (or resume) the export of an approved request. Raises Refused before any archive read
    when governance does not allow it; raises commit.GateFailed when the gate withholds the commit."""
    if engine not in engines.ENGINES:
        raise LakehouseError(f"unknown engine {engine!r}; choose one of {', '.join(engines.ENGINES)}")
    governance.require_role(settings, user, "operators")
    use_system_allocator()
    permission = governance.may_run(settings, request_id, now=now)
    if not permission.allowed:
        governance.append_audit(
            settings, user=user, action="export.refused", request_id=request_id,
            details={"reason": permission.reason},
        )
        raise Refused(f"request {request_id} may not be exported: {permission.reason}")
    request = permission.request
    assert request is not None, "an allowed permission carries its request"
    restricted = open_zone(settings, "restricted")
    opted_out = governance.opted_out_patient_ids(settings)
    n_workers = workers or int(settings.section("export").get("workers", 2))
    unfinished = _resume(restricted, request.id, engine, opted_out)
    resumed = unfinished is not None
    state, batches = unfinished or _plan(
        settings, restricted, request, permission.manifest, user, engine, opted_out, n_workers
    )
    if on_plan:
        on_plan(state.planned_objects)
    governance.append_audit(
        settings, user=user, action="export.resume" if resumed else "export.start", request_id=request_id,
        details={"run_id": state.run_id, "objects": state.planned_objects, "batches": state.batches},
    )
    started = time.monotonic()
    state.status = "running"
    save_state(restricted, state)
    try:
        _execute(settings, restricted, state, request.options, batches, engine, n_workers, spark, progress)
        state.status = "committing"
        save_state(restricted, state)
        checkpoint("before_gate")
        markers = commit.read_markers(restricted, state.run_id, state.batches)
        _tally(state, markers)
        state.gate_report = commit.check_gate(settings, state, markers)
        checkpoint("before_publish")
        commit.publish_objects(settings, state)
        checkpoint("before_commit")
        state.table_versions = commit.commit_tables(settings, state, checkpoint)
    except commit.GateFailed as exc:
        state.status, state.error, state.gate_report = "failed", str(exc), exc.report_key
        _finish(settings, restricted, state, started, user)
        commit.discard_staging(settings, state)
        raise
    except BaseException as exc:
        # A crash of ours (not a kill): keep the run resumable, record a PHI-free reason.
        state.error = type(exc).__name__ if not isinstance(exc, LakehouseError) else str(exc)
        state.seconds += time.monotonic() - started
        save_state(restricted, state)
        raise
    state.status = "succeeded"
    _finish(settings, restricted, state, started, user)
    commit.discard_staging(settings, state)
    return ExportOutcome(state=state, resumed=resumed)


def _finish(settings: Settings, restricted: ObjectStore, state: RunState, started: float, user: str) -> None:
    state.seconds = round(state.seconds + time.monotonic() - started, 3)
    state.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    save_state(restricted, state)
    governance.append_audit(
        settings, user=user, action=f"export.{state.status}", request_id=state.request_id,
        details={
            "run_id": state.run_id,
            "exported": state.exported,
            "quarantined": state.quarantined,
            "bytes_written": state.bytes_written,
            "table_versions": state.table_versions,
            "gate_report": state.gate_report,
        },
    )


def _tally(state: RunState, markers: list[dict[str, Any]]) -> None:
    quarantined: Counter[str] = Counter()
    for m in markers:
        quarantined.update(m["quarantined"])
    state.exported = sum(m["exported"] for m in markers)
    state.quarantined = dict(sorted(quarantined.items()))
    state.bytes_read = sum(m["bytes_read"] for m in markers)
    state.bytes_written = sum(m["bytes_written"] for m in markers)


def _resume(
    restricted: ObjectStore, request_id: str, engine: str, opted_out: set[str]
) -> tuple[RunState, list[list[dict[str, Any]]]] | None:
    """The request's unfinished run and its plan, or None when there is none to resume."""
    for previous in reversed(list_runs(restricted, request_id)):
        if previous.status not in ACTIVE_STATUSES:
            break
        batches = json.loads(restricted.get(f"{run_prefix(previous.run_id)}/plan.json"))["batches"]
        if any(e.get("patient_id") in opted_out for batch in batches for e in batch):
            # An opt-out landed while the run was paused: its plan is void; plan anew.
            previous.status, previous.error = "failed", "opt-out registry changed during the run"
            save_state(restricted, previous)
            break
        previous.attempts += 1
        previous.engine = engine
        return previous, batches
    return None


def _plan(
    settings: Settings,
    restricted: ObjectStore,
    request: Any,
    manifest: list[Any],
    user: str,
    engine: str,
    opted_out: set[str],
    workers: int,
) -> tuple[RunState, list[list[dict[str, Any]]]]:
    options = sorted(parse_options(request.options))
    exported = _exported_profiles(settings, request.project)
    this_profile = (profile_label(), tuple(options))
    entries: list[dict[str, Any]] = []
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
        elif sop in planned_sops:
            skipped["duplicate_sop_instance"] += 1  # same SOP Instance UID under another key
        else:
            planned_sops.add(sop)
            entries.append(
                {
                    "key": entry.key,
                    "etag": entry.etag,
                    "size": int(entry.size),
                    "patient_id": entry.patient_id,
                    "study_instance_uid": entry.study_instance_uid,
                    "series_instance_uid": entry.series_instance_uid,
                    "sop_instance_uid": sop,
                }
            )
    # Whole studies stay together and the order is stable, so batches are reproducible.
    entries.sort(key=lambda e: (e["study_instance_uid"] or "", e["series_instance_uid"] or "", e["key"]))
    batches = split_batches(entries, int(settings.section("export").get("batch_size", 250)), workers)
    run_id = f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    state = RunState(
        run_id=run_id,
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
    )
    restricted.put(f"{run_prefix(run_id)}/plan.json", json.dumps({"batches": batches}).encode())
    save_state(restricted, state)
    return state, batches


def split_batches(entries: list[dict[str, Any]], batch_size: int, workers: int) -> list[list[dict[str, Any]]]:
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


def _exported_profiles(settings: Settings, project: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Source SOP Instance UID → (profile, options) of what the project already holds."""
    lineage = commit.restricted_location(settings, "lineage").read(
        columns=["source_sop_instance_uid", "deid_profile", "deid_options"],
        filters=[("project", "=", project)],
    )
    return {
        row["source_sop_instance_uid"]: (row["deid_profile"], tuple(row["deid_options"]))
        for row in lineage.to_pylist()
    }


def _execute(
    settings: Settings,
    restricted: ObjectStore,
    state: RunState,
    request_options: list[str],
    batches: list[list[dict[str, Any]]],
    engine: str,
    n_workers: int,
    spark: Any,
    progress: Callable[[int], None] | None,
) -> None:
    options = parse_options(request_options)
    deid = DeidSettings(project=state.project, key=load_project_key(settings, state.project), options=options)
    provenance = Provenance(
        export_run_id=state.run_id,
        request_id=state.request_id,
        project=state.project,
        profile=profile_label(),
        options=tuple(sorted(options)),
    )
    worker_settings = engines.share_throttle(settings, n_workers)
    tasks = []
    for index, entries in enumerate(batches):
        if restricted.exists(marker_key(state.run_id, index)):
            if progress:
                progress(len(entries))
            continue
        tasks.append(
            BatchTask(
                settings=worker_settings,
                run_id=state.run_id,
                request_id=state.request_id,
                project=state.project,
                batch_index=index,
                entries=tuple(entries),
                deid=deid,
                provenance=provenance,
            )
        )

    def on_done(summary: dict[str, Any]) -> None:
        commit.gate_batch(restricted, state.run_id, summary)  # the driver gates while workers go on
        if progress:
            progress(len(batches[summary["batch"]]))
        checkpoint(f"after_batch:{summary['batch']}")

    if tasks:
        quality.preload()
    if engine == "spark":
        engines.run_spark(tasks, spark or engines.get_spark(), on_done)
    else:
        engines.run_local(tasks, n_workers, on_done)


def export_status(settings: Settings, run_id: str) -> RunState:
    return load_state(open_zone(settings, "restricted"), run_id)
