"""Finding, comparing and withdrawing dataset versions; withdrawal after a purge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import governance, lake
from lakehouse.config import Settings
from lakehouse.datasets import layout, registry
from lakehouse.errors import Refused
from lakehouse.storage import open_zone


def project_of(settings: Settings, name: str, project: str | None) -> str:
    """The project holding dataset ``name``: the one given, else the only one that has it."""
    if project:
        return project
    holders = [p for p in projects(settings) if registry.list_versions(settings, p, name)]
    if len(holders) != 1:
        found = "no project" if not holders else f"projects {', '.join(holders)}"
        raise Refused(f"dataset {name} is in {found}; pass --project")
    return holders[0]


def projects(settings: Settings) -> list[str]:
    """Projects with any request (a dataset's project always has one)."""
    return sorted({r.project for r in governance.list_requests(settings)})


def members(settings: Settings, project: str, name: str, version: int) -> dict[str, str]:
    """member_id -> split of a version."""
    table = lake.table(settings, "dataset_instances", project=project)
    if not table.exists():
        return {}
    rows = table.read(columns=["member_id", "split"], filters=[("name", "=", name), ("version", "=", version)])
    return dict(zip(rows.column("member_id").to_pylist(), rows.column("split").to_pylist(), strict=True))


@dataclass(frozen=True)
class Diff:
    base: int
    other: int
    added: list[str]
    removed: list[str]
    moved: list[str]  # never expected: a member whose split changed

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.base, "to": self.other, "added": self.added, "removed": self.removed, "moved": self.moved}


def diff(settings: Settings, project: str, name: str, base: int, other: int) -> Diff:
    """Members added and removed going from ``vbase`` to ``vother``."""
    for version in (base, other):
        registry.get_version(settings, project, name, version)
    a, b = members(settings, project, name, base), members(settings, project, name, other)
    moved = sorted(m for m in set(a) & set(b) if a[m] != b[m])
    return Diff(base, other, sorted(set(b) - set(a)), sorted(set(a) - set(b)), moved)


def remove_files(settings: Settings, project: str, name: str, version: int) -> int:
    """Delete a version's files, and the temporary files of writes a killed build left."""
    store = open_zone(settings, "datasets")
    prefix = layout.version_prefix(project, name, version)
    keys = [info.key for info in store.list(prefix)]
    for key in keys:
        store.delete(key)
    return len(keys) + store.remove_temporary(prefix)


def clear_abandoned(settings: Settings, project: str, *, user: str) -> list[registry.Version]:
    """Builds killed before publishing: their files removed, their versions marked ``failed``."""
    cleared = []
    for version in registry.abandoned(settings, project):
        registry.mark(settings, project, version.name, version.version, event="failed", user=user,
                      reason="the build ended before publishing (process gone)")
        remove_files(settings, project, version.name, version.version)
        cleared.append(version)
    return cleared


def withdraw(settings: Settings, project: str, name: str, version: int, *, user: str, reason: str) -> registry.Version:
    """Withdraw a version by hand (curators): files removed, the version marked with the reason."""
    governance.require_role(settings, user, "curators")
    if not reason.strip():
        raise Refused("a withdrawal needs a --reason")
    registry.mark(settings, project, name, version, event="withdrawn", user=user, reason=reason.strip()[:500])
    removed = remove_files(settings, project, name, version)
    governance.append_audit(settings, user=user, action="dataset.withdraw",
                            details={"project": project, "dataset": f"{name}@v{version}", "files": removed})
    return registry.get_version(settings, project, name, version)


def withdraw_purged(
    settings: Settings, project: str, *, user: str, reason: str,
    sops: Iterable[str] = (), patients: Iterable[str] = (), request_id: str | None = None,
) -> list[registry.Version]:
    """After a purge removed research data: withdraw every version holding any of it (by SOP
    Instance UID, pseudonymous PatientID or request), delete its files and the purged rows of
    ``dataset_instances``, and the purged patients' split rows."""
    sops, patients = set(sops), set(patients)
    table = lake.table(settings, "dataset_instances", project=project)
    if not lake.table(settings, "dataset_versions", project=project).exists():
        return []
    clear_abandoned(settings, project, user=user)  # a killed build's files hold no instance rows yet
    clauses = [c for c in (
        lake.in_list("SOPInstanceUID", sops) if sops else "",
        lake.in_list("PatientID", patients) if patients else "",
        lake.in_list("request_id", [request_id]) if request_id else "",
    ) if c]

    def affected() -> set[tuple[str, int]]:
        if not table.exists() or not clauses:
            return set()
        rows = table.read(columns=["name", "version", "SOPInstanceUID", "PatientID", "request_id"]).to_pylist()
        return {(r["name"], r["version"]) for r in rows
                if r["SOPInstanceUID"] in sops or r["PatientID"] in patients or r["request_id"] == request_id}

    withdrawn = registry.sweep(settings, project, user=user, reason=reason, affected=affected)
    for version in withdrawn:
        remove_files(settings, project, version.name, version.version)
    if table.exists() and clauses:
        where = " OR ".join(f"({c})" for c in clauses)
        rows = table.read(columns=["SOPInstanceUID", "PatientID", "request_id", "SeriesInstanceUID"])
        series = set(rows.filter(_matching(rows, sops, patients, request_id)).column("SeriesInstanceUID").to_pylist())
        _remove_annotations(settings, project, series=series, patients=patients, request_id=request_id)
        table.delete_where(where)
    splits = lake.table(settings, "dataset_splits", project=project)
    if patients and splits.exists():
        splits.delete_where(lake.in_list("PatientID", patients))
    return withdrawn


def _matching(rows: pa.Table, sops: set[str], patients: set[str], request_id: str | None) -> pa.ChunkedArray:
    """Which rows of ``dataset_instances`` a purge reaches (by instance, patient or request)."""
    hit = pc.or_(pc.is_in(rows["SOPInstanceUID"], pa.array(sorted(sops), pa.string())),
                 pc.is_in(rows["PatientID"], pa.array(sorted(patients), pa.string())))
    if request_id:
        hit = pc.or_(hit, pc.equal(rows["request_id"], request_id))
    return hit


def _remove_annotations(settings: Settings, project: str, *, series: set[str], patients: set[str],
                        request_id: str | None) -> None:
    """Annotations drawn on what a purge removed: rows, segments and SEG objects."""
    table = lake.table(settings, "annotations", project=project)
    if not table.exists():
        return
    rows = [r for r in table.read(columns=["annotation_id", "SeriesInstanceUID", "PatientID", "request_id",
                                           "seg_object_key"]).to_pylist()
            if r["SeriesInstanceUID"] in series or r["PatientID"] in patients or r["request_id"] == request_id]
    if not rows:
        return
    ids = {r["annotation_id"] for r in rows}
    segments = lake.table(settings, "annotation_segments", project=project)
    if segments.exists():
        segments.delete_where(lake.in_list("annotation_id", ids))
    research = open_zone(settings, "research")
    for row in rows:
        research.delete(row["seg_object_key"])
    table.delete_where(lake.in_list("annotation_id", ids))
