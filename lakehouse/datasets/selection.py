"""Which series a dataset takes: SQL (DuckDB) or a YAML selection over the project's research
tables, read at pinned Delta versions.

The SQL is a condition over the view ``selection`` (one row per series: the ``series`` columns
and the ``studies`` columns of its study), and may query ``studies``, ``series``, ``instances``
and ``attributes`` in subqueries. DuckDB runs with external access off: a selection reads
those four tables and nothing else (no files, no network), and cannot turn that back on.
The tables are handed to DuckDB as Arrow tables (DuckDB's filter pushdown into an Arrow
dataset fails on its string-view literals), and ``instances`` and ``attributes`` only when
the condition names them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from deltalake.exceptions import DeltaError

from lakehouse import lake
from lakehouse.config import Settings
from lakehouse.errors import LakeError, LakehouseError, Refused

SOURCE_TABLES = ("studies", "series", "instances", "attributes")
_STUDY_ONLY = ("PatientID", "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "PatientBirthDate",
               "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "StudyID")
_LISTS = {  # YAML key -> column of the selection view it matches (any of the values)
    "modalities": "Modality",
    "body_parts": "BodyPartExamined",
    "manufacturers": "Manufacturer",
    "request_ids": "request_id",
    "patients": "PatientID",
}
_YAML_KEYS = (*_LISTS, "description_contains", "study_date_from", "study_date_to", "sop_classes", "min_instances")
_PIN = re.compile(r"^(studies|series|instances|attributes)=(\d+)$")


class SelectionError(LakehouseError):
    exit_code = 2


@dataclass(frozen=True)
class Selection:
    """What the user asked for, as recorded with the version (text and its hash)."""

    kind: str  # "sql" | "yaml"
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @classmethod
    def from_options(cls, where: str | None, selection_file: Path | None) -> Selection:
        if (where is None) == (selection_file is None):
            raise SelectionError("give exactly one of --where SQL or --selection FILE")
        if where is not None:
            if not where.strip():
                raise SelectionError("--where is empty")
            return cls("sql", where.strip())
        assert selection_file is not None
        try:
            return cls("yaml", selection_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SelectionError(f"cannot read the selection file ({exc.strerror})") from None


def parse_pins(text: str) -> dict[str, int]:
    """``studies=3,series=3,instances=5,attributes=5`` (all four tables) as a mapping."""
    pins: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _PIN.match(part)
        if not match:
            raise SelectionError(f"--as-of part {part!r} is not TABLE=VERSION (tables: {', '.join(SOURCE_TABLES)})")
        pins[match.group(1)] = int(match.group(2))
    missing = set(SOURCE_TABLES) - set(pins)
    if missing:
        raise SelectionError(f"--as-of must pin every source table; missing {', '.join(sorted(missing))}")
    return pins


@dataclass
class Sources:
    """The research tables at the versions a build reads (the current ones unless pinned)."""

    versions: dict[str, int]
    snapshots: dict[str, lake.Snapshot]

    @classmethod
    def open(cls, settings: Settings, project: str, pins: dict[str, int] | None) -> Sources:
        snapshots: dict[str, lake.Snapshot] = {}
        for name in SOURCE_TABLES:
            table = lake.table(settings, name, project=project)
            version = pins.get(name) if pins else None
            try:
                snapshot = table.open(version)
            except (DeltaError, LakeError):  # a version that is not there
                raise SelectionError(f"table {name} of project {project} has no version {version}") from None
            if snapshot is None:
                raise Refused(f"project {project} has no research table {name}: nothing was exported to it")
            snapshots[name] = snapshot
        return cls({n: s.version for n, s in snapshots.items()}, snapshots)

    def read(self, name: str, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
        return self.snapshots[name].read(columns=columns, filters=filters)


def selected_series(sources: Sources, selection: Selection) -> list[str]:
    """SeriesInstanceUIDs the selection takes, sorted."""
    where, params = _sql_condition(selection)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        for name in SOURCE_TABLES:
            if name in ("studies", "series") or re.search(rf"\b{name}\b", where, re.IGNORECASE):
                con.register(name, sources.read(name))
        study_columns = ", ".join(f'st."{c}"' for c in _STUDY_ONLY)
        con.execute(
            f"CREATE TEMP VIEW selection AS SELECT s.*, {study_columns} "
            "FROM series s JOIN studies st ON s.StudyInstanceUID = st.StudyInstanceUID"
        )
        rows = con.execute(
            f"SELECT DISTINCT SeriesInstanceUID FROM selection WHERE ({where}) ORDER BY 1", params
        ).fetchall()
    except duckdb.Error as exc:
        raise SelectionError(f"the selection does not run: {type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        con.close()
    return [row[0] for row in rows]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""


def _sql_condition(selection: Selection) -> tuple[str, list[Any]]:
    if selection.kind == "sql":
        return selection.text, []
    return yaml_condition(selection.text)


def yaml_condition(text: str) -> tuple[str, list[Any]]:
    """A YAML selection (a mapping, criteria combined with AND) as SQL with bound parameters."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SelectionError("the selection file is not valid YAML") from None
    if not isinstance(raw, dict) or not raw:
        raise SelectionError(f"a selection file is a mapping of criteria: {', '.join(_YAML_KEYS)}")
    unknown = sorted(set(map(str, raw)) - set(_YAML_KEYS))
    if unknown:
        raise SelectionError(f"unknown selection criteria {unknown}; known: {', '.join(_YAML_KEYS)}")
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in sorted(raw.items()):
        if key in _LISTS or key in ("description_contains", "sop_classes"):
            values = _strings(key, value)
            marks = ", ".join("?" for _ in values)
            if key in _LISTS:
                clauses.append(f'"{_LISTS[key]}" IN ({marks})')
                params += values
            elif key == "sop_classes":
                clauses.append(
                    f"SeriesInstanceUID IN (SELECT SeriesInstanceUID FROM instances WHERE SOPClassUID IN ({marks}))"
                )
                params += values
            else:
                texts = " OR ".join(
                    "contains(lower(coalesce(SeriesDescription, '') || ' ' || coalesce(StudyDescription, '')), ?)"
                    for _ in values
                )
                clauses.append(f"({texts})")
                params += [v.lower() for v in values]
        elif key in ("study_date_from", "study_date_to"):
            if not isinstance(value, date):
                raise SelectionError(f"{key} must be a date (YYYY-MM-DD)")
            clauses.append("StudyDate >= ?" if key.endswith("from") else "StudyDate <= ?")
            params.append(value)
        elif key == "min_instances":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SelectionError("min_instances must be a positive integer")
            clauses.append(
                "SeriesInstanceUID IN (SELECT SeriesInstanceUID FROM instances GROUP BY 1 HAVING count(*) >= ?)"
            )
            params.append(value)
    return " AND ".join(clauses), params


def _strings(key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and 0 < len(v) <= 128 for v in values):
        raise SelectionError(f"{key} must be a text or a list of texts (1 to 128 characters)")
    return values
