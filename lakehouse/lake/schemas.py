"""Table schemas kept as data in ``schemas/tables/<name>.json``: the one home of
each table's place, keys, write mode and columns.

Each file: ``{"name", "zone", "path", "keys", "write_mode", "deletable", "version",
"description", "partition_by", "properties", "columns": [{"name", "type", "nullable", "description"}]}``.

- ``path``: the table's folder in its zone; ``{project}`` marks a per-project table.
- ``keys``: the columns that identify a row (merge and insert-new match on them).
- ``write_mode``, how rows arrive (``WRITE_MODES``): ``append`` (at most once per
  application transaction), ``merge`` (upsert on the keys), ``insert_new`` (rows whose
  keys are absent, at most once per application transaction), ``append_serialized``
  (decided from a pinned snapshot; commits to one app id are totally ordered).
- ``deletable``: rows may be removed (Delta delete, then vacuum), e.g. by a purge.
- ``properties`` (optional): Delta table configuration set when the table is created, e.g. the
  catalog keeps its log and files 400 days, so an export can recompute a manifest from the
  catalog version an approval recorded (approvals last up to ``max_validity_days``).

Types are ``string, bool, int32, int64, double, date, timestamp, binary`` or
``list<inner>``. Timestamps are UTC microseconds (what Delta, DuckDB, polars
and Spark all read as they are). Column descriptions become the Delta columns'
comments.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse import resources
from lakehouse.config import ZONES
from lakehouse.errors import LakeError

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}
WRITE_MODES = ("append", "merge", "insert_new", "append_serialized")


def arrow_type(name: str) -> pa.DataType:
    if name.startswith("list<") and name.endswith(">"):
        return pa.list_(arrow_type(name[5:-1]))
    try:
        return _SCALARS[name]
    except KeyError:
        raise LakeError(f"unknown column type {name!r}") from None


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    zone: str
    version: int
    description: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    path: str = ""
    keys: tuple[str, ...] = ()
    write_mode: str = "append"
    deletable: bool = False
    properties: tuple[tuple[str, str], ...] = ()  # Delta table configuration set at creation

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.zone not in ZONES:
            problems.append(f"zone {self.zone!r} is not one of {', '.join(ZONES)}")
        if self.write_mode not in WRITE_MODES:
            problems.append(f"write_mode {self.write_mode!r} is not one of {', '.join(WRITE_MODES)}")
        if self.write_mode in ("merge", "insert_new") and not self.keys:
            problems.append(f"write_mode {self.write_mode} needs keys")
        unknown = set(self.keys + self.partition_by) - set(self.column_names)
        if unknown:
            problems.append(f"keys or partition_by name unknown columns {sorted(unknown)}")
        if _placeholders(self.path) - {"project"}:
            problems.append(f"path {self.path!r} may hold only the {{project}} placeholder")
        if problems:
            raise LakeError(f"table {self.name}: " + "; ".join(problems))

    @property
    def per_project(self) -> bool:
        return "project" in _placeholders(self.path)

    def location(self, project: str | None = None) -> str:
        """The table's folder inside its zone (a per-project table needs ``project``)."""
        if not self.path:
            raise LakeError(f"table {self.name} has no path")
        if not self.per_project:
            if project is not None:
                raise LakeError(f"table {self.name} is shared by all projects; it takes no project")
            return self.path
        if not project or project in (".", "..") or "/" in project or "\\" in project:
            raise LakeError(f"table {self.name} is per project; give a project name (one folder name)")
        return self.path.format(project=project)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The columns as Arrow fields; a description rides along as the field's ``comment``
        (Delta keeps it as the column comment that Spark, Databricks and Unity show)."""
        return pa.schema(
            [
                pa.field(
                    c.name,
                    arrow_type(c.type),
                    nullable=c.nullable,
                    metadata={"comment": c.description} if c.description else None,
                )
                for c in self.columns
            ]
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, table: pa.Table) -> pa.Table:
        """``table``'s columns in this schema's order, cast to its types (extra columns dropped)."""
        schema = self.arrow_schema
        return table.select(schema.names).cast(schema)

    def to_arrow(self, rows: list[dict[str, Any]]) -> pa.Table:
        """Rows (dicts) → an Arrow table in this schema; missing keys become nulls."""
        return pa.Table.from_pylist(rows, schema=self.arrow_schema)


@cache
def table_spec(name: str) -> TableSpec:
    file = f"{name}.json"
    if not resources.has_file("tables", file):
        raise LakeError(f"no schema for table {name!r} (schemas/tables/{file})")
    data = resources.read_json("tables", file)
    return TableSpec(
        name=data["name"],
        zone=data["zone"],
        version=int(data["version"]),
        description=data["description"],
        columns=tuple(Column(**c) for c in data["columns"]),
        partition_by=tuple(data.get("partition_by", ())),
        path=data["path"],
        keys=tuple(data["keys"]),
        write_mode=data["write_mode"],
        deletable=bool(data["deletable"]),
        properties=tuple(sorted(data.get("properties", {}).items())),
    )


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def all_table_specs() -> list[TableSpec]:
    return [table_spec(f.name.removesuffix(".json")) for f in resources.iter_files("tables")]


def render_reference() -> str:
    """Markdown reference of every table and column (written to schemas/README.md)."""
    out = [
        "# Table schemas",
        "",
        "Generated from `schemas/tables/*.json` by `python -m lakehouse.lake.schemas`;",
        "do not edit the tables section by hand. Each column's meaning is also its column",
        "comment in the Delta table (Spark, Databricks and Unity Catalog show it).",
        "",
    ]
    for spec in all_table_specs():
        out += [
            f"## `{spec.name}` (zone: {spec.zone}, schema version {spec.version})",
            "",
            spec.description,
            "",
            f"Location: `{spec.zone}/{spec.path}`. Keys: {', '.join(spec.keys) or '(none)'}. "
            f"Written by: {spec.write_mode.replace('_', '-')}"
            + ("; rows may be deleted (delete + vacuum)." if spec.deletable else "; rows are never deleted."),
            "",
        ]
        if spec.partition_by:
            out += [f"Partitioned by: {', '.join(spec.partition_by)}", ""]
        out += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for c in spec.columns:
            out.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    # A maintainer's tool: in the checkout's editable install the packaged folder is schemas/ itself.
    readme = Path(str(resources.schema_file("README.md")))
    head = readme.read_text().split("<!-- tables -->")[0] if readme.exists() else ""
    readme.write_text(head.rstrip() + "\n\n<!-- tables -->\n\n" + render_reference())
