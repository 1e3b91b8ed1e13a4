"""The project's dataset registry (``dataset_versions``): versions reserved, published, failed
and withdrawn, and the sweeps purges record; a version's status is its last event.

Every event is a serialized append under one Delta app transaction per project, so events are
totally ordered. That is what keeps a purge and a publish apart without a lock: a publish
re-checks its instances inside its append (``publish``'s ``still_valid``); a purge deletes the
research rows first, then appends its sweep. Whichever commits second sees the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError, Refused
from lakehouse.storage import FOREIGN_TEMPORARY_SECONDS, tagged_writer_gone, writer_tag

EVENTS = ("reserved", "published", "failed", "withdrawn", "sweep")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_REF = re.compile(r"^(?P<name>[^@]+?)(?:@v(?P<version>\d+))?$")


class DatasetError(LakehouseError):
    exit_code = 2


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DatasetError(f"dataset name {name!r}: lower-case letters, digits and '-', at most 64")
    return name


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@vN``."""
    match = _REF.match(text.strip())
    if not match:
        raise DatasetError(f"{text!r} is not NAME or NAME@vN")
    version = match.group("version")
    return check_name(match.group("name")), int(version) if version else None


@dataclass(frozen=True)
class Version:
    project: str
    name: str
    version: int
    status: str  # reserved (a build in progress or killed) | published | failed | withdrawn
    build_id: str
    built_by: str
    built_at: datetime
    reason: str | None
    details: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project, "name": self.name, "version": self.version, "status": self.status,
            "built_by": self.built_by, "built_at": self.built_at, "reason": self.reason, **self.details,
        }


def _table(settings: Settings, project: str) -> lake.Table:
    return lake.table(settings, "dataset_versions", project=project)


def _app_id(project: str) -> str:
    return f"datasets:{project}"


def _rows(snapshot: lake.Snapshot | None) -> list[dict[str, Any]]:
    if snapshot is None:
        return []
    return sorted(snapshot.read().to_pylist(), key=lambda r: r["seq"])


def _versions(project: str, rows: list[dict[str, Any]]) -> list[Version]:
    found: dict[tuple[str, int], Version] = {}
    for row in rows:
        if row["event"] == "sweep":
            continue
        key = (row["name"], row["version"])
        first = found.get(key)
        details = json.loads(row["details"]) if row["details"] else {}
        if first is None:
            found[key] = Version(project, row["name"], row["version"], row["event"], row["build_id"],
                                 row["user"], row["at"], row["reason"], details)
        else:
            found[key] = Version(project, first.name, first.version, row["event"], first.build_id,
                                 first.built_by, first.built_at, row["reason"] or first.reason,
                                 {**first.details, **details})
    return sorted(found.values(), key=lambda v: (v.name, v.version))


def list_versions(settings: Settings, project: str, name: str | None = None) -> list[Version]:
    versions = _versions(project, _rows(_table(settings, project).open()))
    return [v for v in versions if name is None or v.name == name]


def get_version(settings: Settings, project: str, name: str, version: int | None) -> Version:
    """A version (the newest published one when ``version`` is None)."""
    versions = list_versions(settings, project, name)
    if version is None:
        published = [v for v in versions if v.status == "published"]
        if not published:
            raise Refused(f"dataset {name} of project {project} has no published version")
        return published[-1]
    for v in versions:
        if v.version == version:
            return v
    raise Refused(f"dataset {name}@v{version} of project {project} does not exist")


def _event(seq: int, name: str, version: int, event: str, build_id: str, user: str,
           reason: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "seq": seq, "name": name, "version": version, "event": event, "build_id": build_id,
        "at": datetime.now(UTC), "user": user, "reason": reason,
        "details": json.dumps(details, sort_keys=True, default=str) if details else None,
    }


def _append(settings: Settings, project: str, decide: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], Any]]) -> Any:
    """Append what ``decide`` returns for the rows of a pinned snapshot (re-run on a race)."""
    table = _table(settings, project)
    table.create()

    def build(snapshot: lake.Snapshot) -> tuple[pa.Table, int, Any]:
        rows = _rows(snapshot)
        new, result = decide(rows)
        return table.spec.to_arrow(new), len(rows) + len(new), result

    return table.append_serialized(_app_id(project), build)


def reserve(settings: Settings, project: str, name: str, *, build_id: str, user: str) -> int:
    """The next version number of ``name``, held for this build (its process tagged, so a build
    killed before publishing is known as abandoned: ``abandoned``)."""

    def decide(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        version = 1 + max((r["version"] for r in rows if r["name"] == name), default=0)
        return [_event(len(rows), name, version, "reserved", build_id, user, details={"writer": writer_tag()})], version

    result: int = _append(settings, project, decide)
    return result


def publish(
    settings: Settings, project: str, name: str, version: int, *, build_id: str, user: str,
    details: dict[str, Any], still_valid: Callable[[], None],
) -> None:
    """Make the version visible. ``still_valid`` (raising Refused) runs inside the serialized
    append, after every earlier event, so a purge committed before it is always seen."""

    def decide(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], None]:
        current = {v.version: v for v in _versions(project, rows) if v.name == name}.get(version)
        if current is None or current.build_id != build_id or current.status != "reserved":
            status = current.status if current else "missing"
            raise Refused(f"dataset {name}@v{version} is {status}; not published")
        still_valid()
        return [_event(len(rows), name, version, "published", build_id, user, details=details)], None

    _append(settings, project, decide)


def abandoned(settings: Settings, project: str) -> list[Version]:
    """Reserved versions whose build process is gone (on this machine), or, built elsewhere,
    reserved longer ago than a build may take."""
    now = datetime.now(UTC)
    found = []
    for version in list_versions(settings, project):
        if version.status != "reserved":
            continue
        gone = tagged_writer_gone(str(version.details.get("writer", "")))
        stale = (now - version.built_at).total_seconds() > FOREIGN_TEMPORARY_SECONDS
        if gone or (gone is None and stale):
            found.append(version)
    return found


def mark(settings: Settings, project: str, name: str, version: int, *, event: str, user: str, reason: str) -> Version:
    """Record a version ``failed`` or ``withdrawn`` (with the reason); returns it as it was."""

    def decide(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Version]:
        current = {v.version: v for v in _versions(project, rows) if v.name == name}.get(version)
        if current is None:
            raise Refused(f"dataset {name}@v{version} of project {project} does not exist")
        if current.status in ("withdrawn", "failed"):
            return [], current
        return [_event(len(rows), name, version, event, current.build_id, user, reason=reason)], current

    result: Version = _append(settings, project, decide)
    return result


def sweep(settings: Settings, project: str, *, user: str, reason: str, affected: Callable[[], set[tuple[str, int]]]) -> list[Version]:
    """A purge's event: every live (reserved or published) version ``affected`` names is
    withdrawn, and a sweep row records that the purge happened at this point of the order."""

    def decide(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Version]]:
        hit = affected()
        live = [v for v in _versions(project, rows) if v.status in ("reserved", "published")
                and (v.name, v.version) in hit]
        new = [_event(len(rows) + i, v.name, v.version, "withdrawn", v.build_id, user, reason=reason)
               for i, v in enumerate(live)]
        new.append(_event(len(rows) + len(new), "", 0, "sweep", "", user, reason=reason,
                          details={"withdrawn": len(live)}))
        return new, live

    result: list[Version] = _append(settings, project, decide)
    return result
