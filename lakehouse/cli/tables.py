"""`lakehouse tables` commands: a project's tables where SQL users look."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli._common import ConfigOpt, JsonOpt, UserOpt, acting, emit, settings_from

app = typer.Typer(
    help="Register a project's research and datasets tables in a catalog, or print DDL for SQL engines. "
    "Restricted tables are never registered.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[str, typer.Option("--project", help="The research project.")]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database", help="Catalog database (default: [tables] database, lakehouse_<project>).")
]


@app.command()
def register(
    project: ProjectOpt,
    catalog: Annotated[str, typer.Option("--catalog", help="The catalog: glue (AWS Glue Data Catalog).")] = "glue",
    database: DatabaseOpt = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or update the project's tables (Delta, with column types and descriptions) in the
    catalog; re-running updates them. Operators and admins; each registration is audited."""
    from lakehouse.workflows import register_tables

    settings = settings_from(config)
    done = register_tables(settings, project, user=acting(settings, user).name, catalog=catalog, database=database)
    lines = [f"{r.action} {r.database}.{r.table} (Delta version {r.version}) at {r.location}" for r in done]
    emit({"registered": [r.to_dict() for r in done]}, as_json, lines)


@app.command()
def ddl(
    project: ProjectOpt,
    dialect: Annotated[str, typer.Option("--dialect", help="spark (delta-spark), trino (Delta connector), athena or duckdb.")],
    database: DatabaseOpt = None,
    parquet: Annotated[
        bool,
        typer.Option(
            "--parquet",
            help="spark and duckdb: views over the Parquet files of each table's current version, for engines "
            "without a Delta reader (pinned to that version: run again after the next export).",
        ),
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the statements that make the project's tables queryable in a SQL engine."""
    from lakehouse.lake.registration import ddl as statements

    settings = settings_from(config)
    sql = statements(settings, project, dialect, database=database, parquet=parquet)
    emit({"dialect": dialect, "statements": sql}, as_json, [f"{s};" for s in sql])
