"""A project's tables where SQL users look: an AWS Glue Data Catalog, or DDL for Spark, Trino,
Athena and DuckDB.

Only the research and datasets zones' tables of the project are ever registered (the restricted
zone's never: they hold identified data), and only those that exist. Everything comes from the
table schemas (``schemas/tables/*.json``): names, locations, column types and descriptions.

Glue: each table is a Delta table (``table_type=DELTA``, read natively by Athena, and by Spark
and Trino through Glue) at its S3 location, with the columns and their descriptions. Registering
again updates the entry in place (``UpdateTable``), so re-running never duplicates.

DDL: ``delta`` statements read the Delta log itself (delta-spark, Trino's Delta connector,
Athena, DuckDB's ``delta`` extension). With ``parquet=True`` the statements instead read the
Parquet files of the table's *current* snapshot (Spark and DuckDB, no Delta reader or
extension download needed); such a view is pinned to that version, so re-run it after the
next export.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lakehouse.config import Settings
from lakehouse.errors import LakeError, Refused
from lakehouse.lake.schemas import TableSpec, all_table_specs
from lakehouse.lake.tables import Table

DIALECTS = ("spark", "trino", "athena", "duckdb")
CATALOGS = ("glue",)
REGISTRABLE_ZONES = ("research", "datasets")
_GLUE_COMMENT_MAX = 255  # Glue's limit on a column comment
_GLUE_DESCRIPTION_MAX = 2048


@dataclass(frozen=True)
class ProjectTable:
    """One existing table of a project, at its current version."""

    spec: TableSpec
    uri: str
    version: int
    files: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Registration:
    database: str
    table: str
    location: str
    version: int
    action: str  # created | updated

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table, "location": self.location,
                "version": self.version, "action": self.action}


def database_name(settings: Settings, project: str, database: str | None = None) -> str:
    """The catalog database: ``database`` as given, else ``[tables] database`` for the project,
    folded to what Glue, Athena and Hive accept (lower case letters, digits, underscores)."""
    name = database or settings.tables.database.format(project=project)
    folded = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not folded.strip("_"):
        raise LakeError(f"database name {name!r} has no letter or digit")
    return folded


def project_tables(settings: Settings, project: str) -> list[ProjectTable]:
    """The project's tables in the research and datasets zones that exist, by name."""
    found = []
    for spec in all_table_specs():
        if spec.zone not in REGISTRABLE_ZONES or not spec.per_project:
            continue
        table = Table(settings.zone(spec.zone), spec, project=project)
        snapshot = table.open()
        if snapshot is not None:
            found.append(ProjectTable(spec, table.uri, snapshot.version, tuple(snapshot.file_uris())))
    if not found:
        raise LakeError(f"project {project!r} has no tables yet (export a request of it first)")
    return sorted(found, key=lambda t: t.name)


def require_registrable(spec: TableSpec) -> None:
    """Refuse a table of the restricted zone (or any zone outside research and datasets)."""
    if spec.zone not in REGISTRABLE_ZONES:
        raise Refused(f"table {spec.name} is in the {spec.zone} zone; only research and datasets tables are registered")


# --- Glue ---------------------------------------------------------------------------


def register_glue(
    settings: Settings,
    project: str,
    *,
    database: str | None = None,
    on_registered: Callable[[Registration], None] | None = None,
) -> list[Registration]:
    """Create or update the project's tables in the Glue Data Catalog (and their database).
    ``on_registered`` is called after each table, e.g. to audit it."""
    db = database_name(settings, project, database)
    tables = project_tables(settings, project)
    not_s3 = sorted({t.spec.zone for t in tables if not settings.zone(t.spec.zone).is_s3})
    if "research" in not_s3:
        raise Refused("the research zone is a local folder; Glue registers tables on S3 only (see `tables ddl`)")
    glue = _glue_client(settings)
    _ensure_database(glue, db, project)
    done = []
    for table in tables:
        if table.spec.zone in not_s3:
            continue
        require_registrable(table.spec)
        entry = glue_table_input(table, project)
        try:
            glue.update_table(DatabaseName=db, TableInput=entry)
            action = "updated"
        except glue.exceptions.EntityNotFoundException:
            glue.create_table(DatabaseName=db, TableInput=entry)
            action = "created"
        registration = Registration(db, table.name, table.uri, table.version, action)
        done.append(registration)
        if on_registered:
            on_registered(registration)
    return done


def glue_table_input(table: ProjectTable, project: str) -> dict[str, Any]:
    """Glue's ``TableInput`` for one Delta table: columns typed and described from its schema."""
    spec = table.spec
    return {
        "Name": spec.name,
        "Description": spec.description[:_GLUE_DESCRIPTION_MAX],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "table_type": "DELTA",  # Athena reads the Delta log natively
            "spark.sql.sources.provider": "delta",
            "classification": "delta",
            "EXTERNAL": "TRUE",
            "lakehouse.project": project,
            "lakehouse.zone": spec.zone,
            "lakehouse.schema_version": str(spec.version),
            "lakehouse.delta_version": str(table.version),
        },
        "StorageDescriptor": {
            "Columns": [
                {"Name": c.name, "Type": _type(c.type, _HIVE), "Comment": c.description[:_GLUE_COMMENT_MAX]}
                for c in spec.columns
            ],
            "Location": table.uri,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
        "PartitionKeys": [],
    }


def _glue_client(settings: Settings) -> Any:
    import boto3

    from lakehouse.storage.s3 import S3Access

    access = S3Access.of(settings.research)
    session = boto3.session.Session(profile_name=access.profile)
    return session.client(
        "glue",
        endpoint_url=settings.tables.glue_endpoint_url or None,
        region_name=settings.tables.glue_region or access.region,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
    )


def _ensure_database(glue: Any, database: str, project: str) -> None:
    try:
        glue.get_database(Name=database)
    except glue.exceptions.EntityNotFoundException:
        try:
            glue.create_database(DatabaseInput={
                "Name": database, "Description": f"lakehouse project {project}: de-identified research tables",
            })
        except glue.exceptions.AlreadyExistsException:
            pass  # another registration created it meanwhile


# --- DDL ----------------------------------------------------------------------------


def ddl(settings: Settings, project: str, dialect: str, *, database: str | None = None, parquet: bool = False) -> list[str]:
    """The statements that make the project's tables queryable in ``dialect``."""
    if dialect not in DIALECTS:
        raise LakeError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if parquet and dialect not in ("spark", "duckdb"):
        raise LakeError("--parquet views are for spark and duckdb; trino and athena read the Delta log")
    db = database_name(settings, project, database)
    tables = project_tables(settings, project)
    for table in tables:
        require_registrable(table.spec)
    if parquet:
        return list(_spark_parquet(tables) if dialect == "spark" else _duckdb_parquet(db, tables))
    return list({"spark": _spark, "trino": _trino, "athena": _athena, "duckdb": _duckdb}[dialect](db, tables))


def _spark(db: str, tables: list[ProjectTable]) -> Iterator[str]:
    yield f"CREATE SCHEMA IF NOT EXISTS {db}"
    for t in tables:
        yield (f"CREATE TABLE IF NOT EXISTS {db}.{t.name} USING DELTA LOCATION {_spark_text(_s3a(t.uri))} "
               f"COMMENT {_spark_text(t.spec.description)}")


def _spark_parquet(tables: list[ProjectTable]) -> Iterator[str]:
    """Temporary views over the current snapshot's files, with the schema's column comments."""
    for t in tables:
        columns = ", ".join(f"`{c.name}` COMMENT {_spark_text(c.description)}" for c in t.spec.columns)
        if t.files:
            names = ", ".join(f"`{c.name}`" for c in t.spec.columns)
            body = " UNION ALL ".join(f"SELECT {names} FROM parquet.`{_s3a(f)}`" for f in t.files)
        else:
            body = "SELECT " + ", ".join(f"CAST(NULL AS {_type(c.type, _SPARK)}) AS `{c.name}`" for c in t.spec.columns)
            body += " WHERE false"
        yield f"CREATE OR REPLACE TEMPORARY VIEW {t.name} ({columns}) AS {body}"


def _trino(db: str, tables: list[ProjectTable]) -> Iterator[str]:
    yield f"CREATE SCHEMA IF NOT EXISTS delta.{db}"
    for t in tables:
        yield (f"CALL delta.system.register_table(schema_name => {_text(db)}, table_name => {_text(t.name)}, "
               f"table_location => {_text(t.uri)})")


def _athena(db: str, tables: list[ProjectTable]) -> Iterator[str]:
    yield f"CREATE DATABASE IF NOT EXISTS {db}"
    for t in tables:
        yield (f"CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{t.name} LOCATION {_text(t.uri)} "
               f"TBLPROPERTIES ('table_type' = 'DELTA')")


def _duckdb(db: str, tables: list[ProjectTable]) -> Iterator[str]:
    yield "INSTALL delta"
    yield "LOAD delta"
    yield f"CREATE SCHEMA IF NOT EXISTS {db}"
    for t in tables:
        yield f"CREATE OR REPLACE VIEW {db}.{t.name} AS SELECT * FROM delta_scan({_text(t.uri)})"
        yield from _duckdb_comments(db, t)


def _duckdb_parquet(db: str, tables: list[ProjectTable]) -> Iterator[str]:
    yield f"CREATE SCHEMA IF NOT EXISTS {db}"
    for t in tables:
        names = ", ".join(f'"{c.name}"' for c in t.spec.columns)
        if t.files:
            files = ", ".join(_text(f) for f in t.files)
            body = f"SELECT {names} FROM read_parquet([{files}], union_by_name = true)"
        else:
            body = "SELECT " + ", ".join(f'CAST(NULL AS {_type(c.type, _DUCKDB)}) AS "{c.name}"' for c in t.spec.columns)
            body += " WHERE false"
        yield f"CREATE OR REPLACE VIEW {db}.{t.name} AS {body}"
        yield from _duckdb_comments(db, t)


def _duckdb_comments(db: str, t: ProjectTable) -> Iterator[str]:
    yield f"COMMENT ON VIEW {db}.{t.name} IS {_text(t.spec.description)}"
    for c in t.spec.columns:
        if c.description:
            yield f'COMMENT ON COLUMN {db}.{t.name}."{c.name}" IS {_text(c.description)}'


# --- types and literals ---------------------------------------------------------------

_HIVE = {"string": "string", "bool": "boolean", "int32": "int", "int64": "bigint", "double": "double",
         "date": "date", "timestamp": "timestamp", "binary": "binary", "list": "array<{}>"}
_SPARK = {k: v.upper() for k, v in _HIVE.items()}
_DUCKDB = {"string": "VARCHAR", "bool": "BOOLEAN", "int32": "INTEGER", "int64": "BIGINT", "double": "DOUBLE",
           "date": "DATE", "timestamp": "TIMESTAMPTZ", "binary": "BLOB", "list": "{}[]"}


def _type(name: str, names: dict[str, str]) -> str:
    """A schema type (``string``, ``list<double>``, ...) in an engine's spelling."""
    if name.startswith("list<") and name.endswith(">"):
        return names["list"].format(_type(name[5:-1], names))
    return names[name]


def _text(value: str) -> str:
    """A SQL string literal (standard quoting: Trino, Athena, DuckDB)."""
    return "'" + value.replace("'", "''") + "'"


def _spark_text(value: str) -> str:
    """A Spark SQL string literal (backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _s3a(uri: str) -> str:
    """Hadoop's S3 scheme for Spark; other locations as they are."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


__all__ = [
    "CATALOGS",
    "DIALECTS",
    "ProjectTable",
    "Registration",
    "database_name",
    "ddl",
    "glue_table_input",
    "project_tables",
    "register_glue",
]
