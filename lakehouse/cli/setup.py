"""``lakehouse init`` and ``lakehouse demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli._common import JsonOpt, emit
from lakehouse.config import init_root


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
    """Run the flow end to end on local folders and a synthetic archive."""
    from lakehouse.catalog import catalog_stats, sync_catalog
    from lakehouse.config import load_settings
    from lakehouse.synth import synthesize_archive

    config_path = init_root(directory)
    settings = load_settings(config_path)
    written = synthesize_archive(settings.archive.local_path, patients=patients, seed=seed)
    sync = sync_catalog(settings)
    stats = catalog_stats(settings)
    result = {
        "config": str(config_path),
        "synthesized_objects": len(written),
        "catalog_sync": sync.to_dict(),
        "catalog_stats": stats,
    }
    emit(
        result,
        as_json,
        [
            f"demo root: {config_path.parent}",
            f"synthesized {len(written)} objects into {settings.archive.uri}",
            f"catalog: {sync.summary_line()}",
        ],
    )
