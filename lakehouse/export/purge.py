"""Removing exported data: a patient's opt-out, or a request's outputs.

A purge holds the project's lease (``lease``), waiting up to ``[export] lease_wait_seconds``
for a running export, so it never interleaves with a commit. A patient's purge registers
the opt-out first, so an export running meanwhile withholds the patient at its publish point.

What a purge removes is found two ways, so nothing published escapes it whatever crashed:
through lineage (an export commits lineage before it publishes any object or row), and
through the research rows themselves: a patient's by the pseudonymous PatientID (the
project's keyed pseudonym of the Patient ID, as de-identification derives it), a request's
by the ``request_id`` every row carries. Rows go with the lake's ``delete_where`` (then a
vacuum per ``[export] vacuum_retention_hours``, so their files leave storage too), objects
are deleted, lineage rows last, so an interrupted purge can simply be run again. Staging
goes as well: the patient's staged objects in unfinished runs, or the request's unfinished
runs as a whole (voided), and the project is swept (``staging``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakehouse import governance, lake
from lakehouse.config import Settings
from lakehouse.deid import pseudonymize_id
from lakehouse.export import staging
from lakehouse.export.keys import load_project_key
from lakehouse.export.lease import Lease, acquire
from lakehouse.export.state import list_runs
from lakehouse.export.worker import read_parquet_bytes
from lakehouse.storage import open_zone


@dataclass
class PurgeResult:
    projects: list[str] = field(default_factory=list)
    instances: int = 0
    objects: int = 0
    rows_deleted: dict[str, int] = field(default_factory=dict)
    # What the purge reached, per project, for the stages downstream of research (datasets):
    # the SOP Instance UIDs removed and the patient's pseudonymous PatientID.
    sops: dict[str, set[str]] = field(default_factory=dict, repr=False)
    pseudo_patients: dict[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "projects": self.projects,
            "instances": self.instances,
            "objects": self.objects,
            "rows_deleted": self.rows_deleted,
        }


@dataclass
class _Targets:
    """What a purge removes from one project: instances, the series and studies they were in
    (removed once no instance is left in them), and the published objects."""

    sops: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)

    def add_lineage(self, lineage: pa.Table) -> None:
        self.sops.update(lineage.column("sop_instance_uid").to_pylist())
        self.series.update(lineage.column("series_instance_uid").to_pylist())
        self.studies.update(lineage.column("study_instance_uid").to_pylist())
        self.objects.update(lineage.column("output_key").to_pylist())

    def add_instances(self, instances: pa.Table) -> None:
        self.sops.update(instances.column("SOPInstanceUID").to_pylist())
        self.series.update(instances.column("SeriesInstanceUID").to_pylist())
        self.studies.update(instances.column("StudyInstanceUID").to_pylist())
        self.objects.update(instances.column("object_key").to_pylist())


_INSTANCE_COLUMNS = ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "object_key"]


def purge_patient(settings: Settings, patient_id: str, *, user: str, reason: str = "opt-out purge") -> PurgeResult:
    """Remove a patient's exported data from every project and keep them out of later exports."""
    governance.require_role(settings, user, "admins")
    if patient_id not in governance.opted_out_patient_ids(settings):
        governance.add_optout(settings, user=user, patient_id=patient_id, reason=reason)
    result = PurgeResult()
    for project in _projects(settings):
        with _project_lease(settings, project, user, "opt-out purge") as lease:
            targets = _Targets()
            targets.add_lineage(
                lake.table(settings, "lineage").read(
                    filters=[("project", "=", project), ("source_patient_id", "=", patient_id)]
                )
            )
            studies = lake.table(settings, "studies", project=project)
            if studies.exists():  # rows found by the keyed pseudonym, lineage or not
                pseudo = pseudonymize_id(patient_id, load_project_key(settings, project), "patient")
                result.pseudo_patients[project] = pseudo
                theirs = studies.read(columns=["StudyInstanceUID"], filters=[("PatientID", "=", pseudo)])
                found = set(theirs.column("StudyInstanceUID").to_pylist())
                targets.studies |= found
                if found:
                    targets.add_instances(_instances(settings, project, ("StudyInstanceUID", "in", found)))
            _remove(settings, lease, project, targets, result)
            _unstage_patient(settings, lease, patient_id)
            staging.sweep_project(settings, lease, user=user)
    governance.append_audit(settings, user=user, action="optout.purge", details=result.to_dict())
    return result


def purge_request(settings: Settings, request_id: str, *, user: str) -> PurgeResult:
    """Remove everything a (revoked) request exported; its unfinished runs are voided."""
    governance.require_role(settings, user, "admins")
    request = governance.get_request(settings, request_id)
    result = PurgeResult()
    with _project_lease(settings, request.project, user, f"purge of {request_id}") as lease:
        restricted = open_zone(settings, "restricted")
        for run in list_runs(restricted, request_id):
            if run.active:
                status = staging.void_status(request.status)
                staging.void_run(settings, lease, run, status=status, reason=f"request {request_id} purged", user=user)
        targets = _Targets()
        targets.add_lineage(lake.table(settings, "lineage").read(filters=[("request_id", "=", request_id)]))
        targets.add_instances(_instances(settings, request.project, ("request_id", "=", request_id)))
        _remove(settings, lease, request.project, targets, result)
        staging.sweep_project(settings, lease, user=user)
    governance.append_audit(settings, user=user, action="request.purge", request_id=request_id, details=result.to_dict())
    return result


def _project_lease(settings: Settings, project: str, user: str, purpose: str, wait: float | None = None) -> Lease:
    return acquire(
        open_zone(settings, "restricted"), project, user=user, purpose=purpose,
        term=settings.export.lease_seconds,
        wait=settings.export.lease_wait_seconds if wait is None else wait,
    )


def _projects(settings: Settings) -> list[str]:
    """Every project anything was exported to: those of the requests (and of lineage)."""
    projects = {r.project for r in governance.list_requests(settings)}
    lineage = lake.table(settings, "lineage").read(columns=["project"])
    return sorted(projects | set(lineage.column("project").to_pylist()))


def _instances(settings: Settings, project: str, where: tuple[str, str, Any]) -> pa.Table:
    return lake.table(settings, "instances", project=project).read(columns=_INSTANCE_COLUMNS, filters=[where])


def _remove(settings: Settings, lease: Lease, project: str, targets: _Targets, result: PurgeResult) -> None:
    """Delete the targets' rows and objects, then the lineage rows that pointed at them."""
    if not (targets.sops or targets.studies or targets.objects):
        return
    deleted: defaultdict[str, int] = defaultdict(int, result.rows_deleted)
    lease.ensure()
    if targets.sops:
        for name in ("instances", "attributes"):
            table = lake.table(settings, name, project=project)
            deleted[name] += table.delete_where(lake.in_list("SOPInstanceUID", targets.sops))
    # Series and studies go when no remaining instance refers to them.
    remaining = lake.table(settings, "instances", project=project).read(
        columns=["StudyInstanceUID", "SeriesInstanceUID"]
    )
    gone_series = targets.series - set(remaining.column("SeriesInstanceUID").to_pylist())
    gone_studies = targets.studies - set(remaining.column("StudyInstanceUID").to_pylist())
    if gone_series:
        series = lake.table(settings, "series", project=project)
        deleted["series"] += series.delete_where(lake.in_list("SeriesInstanceUID", gone_series))
    if gone_studies:
        studies = lake.table(settings, "studies", project=project)
        deleted["studies"] += studies.delete_where(lake.in_list("StudyInstanceUID", gone_studies))
    research = open_zone(settings, "research")
    for key in sorted(targets.objects):
        research.delete(key)
    if targets.objects:
        deleted["lineage"] += lake.table(settings, "lineage").delete_where(lake.in_list("output_key", targets.objects))
    result.projects.append(project)
    result.sops[project] = set(targets.sops)
    result.instances += len(targets.sops)
    result.objects += len(targets.objects)
    result.rows_deleted = dict(deleted)


def _unstage_patient(settings: Settings, lease: Lease, patient_id: str) -> None:
    """Delete the patient's staged objects from the project's unfinished runs. Objects of batches
    not done yet go too (no lineage names them yet; a resumed run redoes those batches)."""
    restricted = open_zone(settings, "restricted")
    research = open_zone(settings, "research")
    for run in list_runs(restricted):
        if run.project != lease.project or not run.active:
            continue
        kept: set[str] = set()
        for batch in range(run.batches):
            if restricted.exists(run.layout.marker(batch)):
                lineage = read_parquet_bytes(restricted.get(run.layout.staged("lineage", batch)))
                for row in lineage.select(["source_patient_id", "output_key"]).to_pylist():
                    if row["source_patient_id"] != patient_id:
                        kept.add(run.layout.staging_object(row["output_key"]))
        lease.ensure()
        for info in list(research.list(run.layout.staging_prefix)):
            if info.key not in kept:
                research.delete(info.key)
