"""Table schemas kept as data in ``schemas/tables/<name>.json``.

Each file: ``{"name", "zone", "version", "description", "partition_by",
"columns": [{"name", "type", "nullable", "description"}]}``. Types are
``string, bool, int32, int64, double, date, timestamp, binary`` or
``list<inner>``. Timestamps are UTC microseconds (what Delta, DuckDB, polars
and Spark all read as they are).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse.errors import LakeError

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
TABLES_DIR = SCHEMAS_DIR / "tables"

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

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in self.columns]
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
    path = TABLES_DIR / f"{name}.json"
    if not path.is_file():
        raise LakeError(f"no schema for table {name!r} in {TABLES_DIR}")
    data = json.loads(path.read_text())
    return TableSpec(
        name=data["name"],
        zone=data["zone"],
        version=int(data["version"]),
        description=data["description"],
        columns=tuple(Column(**c) for c in data["columns"]),
        partition_by=tuple(data.get("partition_by", ())),
    )


def all_table_specs() -> list[TableSpec]:
    return [table_spec(p.stem) for p in sorted(TABLES_DIR.glob("*.json"))]


def render_reference() -> str:
    """Markdown reference of every table and column (written to schemas/README.md)."""
    out = [
        "# Table schemas",
        "",
        "Generated from `schemas/tables/*.json` by `python -m lakehouse.lake.schemas`;",
        "do not edit the tables section by hand.",
        "",
    ]
    for spec in all_table_specs():
        out += [
            f"## `{spec.name}` (zone: {spec.zone}, schema version {spec.version})",
            "",
            spec.description,
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
    readme = SCHEMAS_DIR / "README.md"
    head = readme.read_text().split("<!-- tables -->")[0] if readme.exists() else ""
    readme.write_text(head.rstrip() + "\n\n<!-- tables -->\n\n" + render_reference())
