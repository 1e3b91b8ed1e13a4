"""Removing exported data: a patient's opt-out, or a revoked request's outputs.

Rows go with Delta deletes (one commit per table), objects are deleted, then the
tables are vacuumed per ``[export] vacuum_retention_hours`` so the deleted rows'
files are gone from storage too, not only from the current version. The lineage
rows that pointed at the purged outputs are deleted last, so an interrupted
purge can simply be run again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.export.commit import research_location, restricted_location
from lakehouse.lake import DeltaLocation
from lakehouse.storage import open_zone


@dataclass
class PurgeResult:
    projects: list[str] = field(default_factory=list)
    instances: int = 0
    objects: int = 0
    rows_deleted: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "projects": self.projects,
            "instances": self.instances,
            "objects": self.objects,
            "rows_deleted": self.rows_deleted,
        }


def _in_list(column: str, values: set[str]) -> str:
    # Values are pseudonymous UIDs (digits and dots) or our own keys: quoted defensively anyway.
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))
    return f"{column} IN ({quoted})"


def _delete(location: DeltaLocation, predicate: str, retention_hours: int) -> int:
    table = location.open()
    if table is None:
        return 0
    metrics = table.delete(predicate)
    table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
    return int(metrics.get("num_deleted_rows", 0) or 0)


def _purge_lineage_rows(settings: Settings, rows: list[dict[str, Any]]) -> PurgeResult:
    result = PurgeResult()
    retention = int(settings.section("export").get("vacuum_retention_hours", 0))
    research = open_zone(settings, "research")
    by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_project[row["project"]].append(row)
    deleted: dict[str, int] = defaultdict(int)
    for project, project_rows in sorted(by_project.items()):
        sops = {r["sop_instance_uid"] for r in project_rows}
        for table in ("instances", "attributes"):
            deleted[table] += _delete(research_location(settings, project, table), _in_list("SOPInstanceUID", sops), retention)
        # Studies and series go when no remaining instance refers to them.
        remaining = research_location(settings, project, "instances").read(
            columns=["StudyInstanceUID", "SeriesInstanceUID"]
        )
        live_series = set(remaining.column("SeriesInstanceUID").to_pylist())
        live_studies = set(remaining.column("StudyInstanceUID").to_pylist())
        gone_series = {r["series_instance_uid"] for r in project_rows} - live_series
        gone_studies = {r["study_instance_uid"] for r in project_rows} - live_studies
        if gone_series:
            deleted["series"] += _delete(research_location(settings, project, "series"), _in_list("SeriesInstanceUID", gone_series), retention)
        if gone_studies:
            deleted["studies"] += _delete(research_location(settings, project, "studies"), _in_list("StudyInstanceUID", gone_studies), retention)
        for r in project_rows:
            research.delete(r["output_key"])
            result.objects += 1
        result.projects.append(project)
        result.instances += len(sops)
    if rows:
        keys = {r["output_key"] for r in rows}
        deleted["lineage"] += _delete(restricted_location(settings, "lineage"), _in_list("output_key", keys), retention)
    result.rows_deleted = dict(deleted)
    return result


def purge_patient(settings: Settings, patient_id: str, *, user: str, reason: str = "opt-out purge") -> PurgeResult:
    """Remove a patient's exported data from every project and keep them out of later exports."""
    governance.require_role(settings, user, "admins")
    if patient_id not in governance.opted_out_patient_ids(settings):
        governance.add_optout(settings, user=user, patient_id=patient_id, reason=reason)
    lineage = restricted_location(settings, "lineage").read()
    rows = [r for r in lineage.to_pylist() if r["source_patient_id"] == patient_id]
    result = _purge_lineage_rows(settings, rows)
    governance.append_audit(settings, user=user, action="optout.purge", details=result.to_dict())
    return result


def purge_request(settings: Settings, request_id: str, *, user: str) -> PurgeResult:
    """Remove everything a (revoked) request exported."""
    governance.require_role(settings, user, "admins")
    lineage = restricted_location(settings, "lineage").read()
    rows = [r for r in lineage.to_pylist() if r["request_id"] == request_id]
    result = _purge_lineage_rows(settings, rows)
    governance.append_audit(settings, user=user, action="request.purge", request_id=request_id, details=result.to_dict())
    return result
