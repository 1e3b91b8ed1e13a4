"""`lakehouse synth` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli._common import JsonOpt, emit

app = typer.Typer(
    help="Synthetic DICOM archives with fake identities, for trying lakehouse.", no_args_is_help=True
)


@app.command("archive")
def archive(
    directory: Annotated[Path, typer.Argument(help="Folder to write the archive into.")],
    patients: Annotated[int, typer.Option(help="Number of synthetic patients.")] = 6,
    layout: Annotated[
        str,
        typer.Option(
            help="hierarchical (<Study>/<Series>/<SOP>.dcm) or opaque (keys without DICOM meaning)."
        ),
    ] = "hierarchical",
    seed: Annotated[int, typer.Option(help="Same seed, same archive.")] = 0,
    ct_size: Annotated[
        int, typer.Option("--ct-size", help="CT matrix size (512 gives ~0.5 MB slices).")
    ] = 64,
    ct_slices: Annotated[int, typer.Option("--ct-slices", help="CT slices per patient.")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Write a realistic synthetic archive: CT, MR, CR, US, SC, SR and KO objects."""
    from lakehouse.synth import synthesize_archive

    keys = synthesize_archive(
        directory, patients=patients, seed=seed, layout=layout, ct_size=ct_size, ct_slices=ct_slices
    )
    size = sum((directory / key).stat().st_size for key in keys)
    emit(
        {"directory": str(directory), "objects": len(keys), "bytes": size, "layout": layout, "seed": seed},
        as_json,
        f"wrote {len(keys)} objects ({size} bytes) for {patients} patients into {directory}",
    )
