"""Removing exported data: a patient's opt-out, or a revoked request's outputs.

Rows go with the lake's ``delete_where`` (one commit per table, then a vacuum per
``[export] vacuum_retention_hours`` so the deleted rows' files are gone from storage
too, not only from the current version), and objects are deleted. The lineage
rows that pointed at the purged outputs are deleted last, so an interrupted
purge can simply be run again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lakehouse import governance, lake
from lakehouse.config import Settings
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


def _purge_lineage_rows(settings: Settings, rows: list[dict[str, Any]]) -> PurgeResult:
    result = PurgeResult()
    research = open_zone(settings, "research")
    by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_project[row["project"]].append(row)
    deleted: dict[str, int] = defaultdict(int)
    for project, project_rows in sorted(by_project.items()):
        sops = {r["sop_instance_uid"] for r in project_rows}
        for name in ("instances", "attributes"):
            table = lake.table(settings, name, project=project)
            deleted[name] += table.delete_where(lake.in_list("SOPInstanceUID", sops))
        # Studies and series go when no remaining instance refers to them.
        remaining = lake.table(settings, "instances", project=project).read(
            columns=["StudyInstanceUID", "SeriesInstanceUID"]
        )
        live_series = set(remaining.column("SeriesInstanceUID").to_pylist())
        live_studies = set(remaining.column("StudyInstanceUID").to_pylist())
        gone_series = {r["series_instance_uid"] for r in project_rows} - live_series
        gone_studies = {r["study_instance_uid"] for r in project_rows} - live_studies
        if gone_series:
            series = lake.table(settings, "series", project=project)
            deleted["series"] += series.delete_where(lake.in_list("SeriesInstanceUID", gone_series))
        if gone_studies:
            studies = lake.table(settings, "studies", project=project)
            deleted["studies"] += studies.delete_where(lake.in_list("StudyInstanceUID", gone_studies))
        for r in project_rows:
            research.delete(r["output_key"])
            result.objects += 1
        result.projects.append(project)
        result.instances += len(sops)
    if rows:
        keys = {r["output_key"] for r in rows}
        deleted["lineage"] += lake.table(settings, "lineage").delete_where(lake.in_list("output_key", keys))
    result.rows_deleted = dict(deleted)
    return result


def purge_patient(settings: Settings, patient_id: str, *, user: str, reason: str = "opt-out purge") -> PurgeResult:
    """Remove a patient's exported data from every project and keep them out of later exports."""
    governance.require_role(settings, user, "admins")
    if patient_id not in governance.opted_out_patient_ids(settings):
        governance.add_optout(settings, user=user, patient_id=patient_id, reason=reason)
    lineage = lake.table(settings, "lineage").read()
    rows = [r for r in lineage.to_pylist() if r["source_patient_id"] == patient_id]
    result = _purge_lineage_rows(settings, rows)
    governance.append_audit(settings, user=user, action="optout.purge", details=result.to_dict())
    return result


def purge_request(settings: Settings, request_id: str, *, user: str) -> PurgeResult:
    """Remove everything a (revoked) request exported."""
    governance.require_role(settings, user, "admins")
    lineage = lake.table(settings, "lineage").read()
    rows = [r for r in lineage.to_pylist() if r["request_id"] == request_id]
    result = _purge_lineage_rows(settings, rows)
    governance.append_audit(settings, user=user, action="request.purge", request_id=request_id, details=result.to_dict())
    return result
