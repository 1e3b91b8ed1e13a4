"""``lakehouse init`` and ``lakehouse demo``."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli._common import JsonOpt, emit, progress
from lakehouse.config import init_root

DEMO_ROLES = {
    "requesters": ["demo-requester"],
    "approvers": ["demo-approver"],
    "operators": ["demo-operator"],
    "admins": ["demo-admin"],
}
DEMO_OPTIONS = ["retain-modified-dates", "clean-descriptors", "clean-structured-content", "clean-graphics"]
DEMO_QUERY = (
    "SELECT Modality, count(*) AS instances, count(DISTINCT StudyInstanceUID) AS studies "
    "FROM instances GROUP BY Modality ORDER BY Modality"
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to hold the zones and lakehouse.toml.")],
    archive: Annotated[
        str | None, typer.Option("--archive", help="Archive URI (s3://bucket/prefix or a folder) instead of DIR/archive.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create DIR/lakehouse.toml with embedded defaults and the zone folders."""
    path = init_root(directory, archive)
    emit({"config": str(path)}, as_json, f"wrote {path}")


def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo root.")] = Path("lakehouse-demo"),
    patients: Annotated[int, typer.Option(help="Synthetic patients in the archive.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic archive.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole flow on local folders: synthesize, catalog, request, approve, export, query.

    demo-requester submits the request, demo-approver approves it, demo-operator exports it.
    Burned-in objects (US, secondary capture) stay quarantined: the demo does not clean pixels."""
    import duckdb

    from lakehouse import governance
    from lakehouse.catalog import catalog_stats, sync_catalog
    from lakehouse.config import load_settings
    from lakehouse.export import run_export
    from lakehouse.export.commit import research_location
    from lakehouse.synth import synthesize_archive

    config_path = init_root(directory, roles=DEMO_ROLES)
    settings = load_settings(config_path)
    written = synthesize_archive(settings.archive.local_path, patients=patients, seed=seed)
    with progress("cataloging", len(written), enabled=not as_json) as advance:
        sync = sync_catalog(settings, progress=advance)
    governance.append_audit(settings, user="demo-operator", action="catalog.sync", details=sync.to_dict())
    request = governance.submit_request(
        settings,
        user="demo-requester",
        project="demo",
        title="Demo cohort",
        purpose="Try lakehouse end to end on synthetic data",
        protocol="DEMO-IRB-0001",
        cohort={},
        options=DEMO_OPTIONS,
    )
    governance.approve(settings, request.id, user="demo-approver", expires=date.today() + timedelta(days=30))
    with progress("exporting", None, enabled=not as_json) as advance:
        outcome = run_export(settings, request.id, user="demo-operator", progress=advance)
    instances = duckdb.from_arrow(research_location(settings, "demo", "instances").read())
    result_rows = instances.query("instances", DEMO_QUERY)
    rows = result_rows.fetchall() if result_rows is not None else []
    state = outcome.state
    result = {
        "config": str(config_path),
        "synthesized_objects": len(written),
        "catalog_sync": sync.to_dict(),
        "catalog_stats": catalog_stats(settings),
        "request_id": request.id,
        "export": outcome.to_dict(),
        "sample_query": DEMO_QUERY,
        "sample_result": [list(r) for r in rows],
    }
    tables = settings.research.join("demo", "tables")
    emit(
        result,
        as_json,
        [
            f"demo root: {config_path.parent}",
            f"synthesized {len(written)} objects into {settings.archive.uri}",
            f"catalog: {sync.summary_line()}",
            f"request {request.id}: submitted by demo-requester, approved by demo-approver",
            f"export {state.run_id}: {state.exported} objects exported, quarantined: "
            + (", ".join(f"{reason} {n}" for reason, n in state.quarantined.items()) or "none"),
            f"Delta tables: {tables}/{{studies,series,instances,attributes}}",
            "",
            "Query them, e.g. with DuckDB over deltalake:",
            "  from deltalake import DeltaTable; import duckdb",
            f"  instances = DeltaTable('{tables}/instances').to_pyarrow_table()",
            f"  duckdb.sql(\"{DEMO_QUERY}\")",
            "",
            *[f"  {modality:<4} {n_instances:>5} instances in {n_studies} studies" for modality, n_instances, n_studies in rows],
        ],
    )
