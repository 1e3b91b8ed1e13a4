"""``lakehouse init`` and ``lakehouse demo``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakehouse.cli._common import JsonOpt, emit, progress
from lakehouse.config import exposed_restricted_folder, init_root

if TYPE_CHECKING:
    from lakehouse.datasets import BuildResult
    from lakehouse.demo import DemoResult


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
    """Create DIR/lakehouse.toml with embedded defaults and the zone folders.

    Warns when the restricted zone is a local folder open to group or others."""
    path = init_root(directory, archive)
    warning = exposed_restricted_folder(path)
    data: dict[str, object] = {"config": str(path)} | ({"warnings": [warning]} if warning else {})
    emit(data, as_json, [f"wrote {path}"] + ([f"warning: {warning}"] if warning else []))


def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo root.")] = Path("lakehouse-demo"),
    patients: Annotated[int, typer.Option(help="Synthetic patients in the archive.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic archive.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole flow on local folders: synthesize, catalog, request, approve, export, query.

    demo-requester submits the request, demo-approver approves it, demo-operator exports it,
    demo-curator builds a labeling dataset of the CT series, demo-labeler imports a label map for one.
    Burned-in objects (US, secondary capture) stay quarantined: the demo does not clean pixels."""
    from lakehouse.demo import QUERY, run_demo

    def bar(description: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
        return progress(description, total, enabled=not as_json)

    result = run_demo(directory, patients=patients, seed=seed, progress=bar)
    state = result.export.state
    tables = result.tables_uri
    emit(
        result.to_dict(),
        as_json,
        [
            f"demo root: {result.config_path.parent}",
            f"synthesized {result.synthesized_objects} objects into {result.settings.archive.uri}",
            f"catalog: {result.catalog_sync.summary_line()}",
            f"request {result.request_id}: submitted by demo-requester, approved by demo-approver",
            f"export {state.run_id}: {state.exported} objects exported, quarantined: "
            + (", ".join(f"{reason} {n}" for reason, n in state.quarantined.items()) or "none"),
            *_risk_lines(result),
            f"Delta tables: {tables}/{{studies,series,instances,attributes}}",
            "",
            "Query them, e.g. with DuckDB over deltalake (pip install 'lakehouse[query]'): a dataset scan",
            "pushes filters down to the Parquet files (polars: pl.scan_delta; notebooks/README.md says more):",
            "  import duckdb; from lakehouse.lake import scan  # DeltaTable(uri).to_pyarrow_dataset()",
            f"  instances = scan('{tables}/instances')",
            f"  duckdb.sql(\"{QUERY}\")",
            "",
            *[
                f"  {modality:<4} {n_instances:>5} instances in {n_studies} studies"
                for modality, n_instances, n_studies in result.per_modality
            ],
            "",
            *_dataset_lines(result.dataset, result.config_path),
            "",
            *_annotation_lines(result.annotations),
        ],
    )


def _risk_lines(result: DemoResult) -> list[str]:
    """The export's k and generalizations, and what the default floor would have decided."""
    from lakehouse.governance.cohort import risk_line

    risk = result.export.state.risk
    lines = [f"  k-anonymity: {risk_line(risk)}"] if risk else []
    default = result.at_default_floor
    verdict = f"refused: {default.refusal}" if default.refusal else (
        f"exported with generalizations: {', '.join(default.generalizations) or 'none'}")
    return lines + [f"  at the default floor (min_k {default.min_k}) this export would be {verdict}"]


def _dataset_lines(result: BuildResult, config: Path) -> list[str]:
    """Where the demo's dataset is and how a labeling team opens it."""
    ref = result.version.ref
    counts = result.version.details["counts"]
    splits = ", ".join(f"{k} {v}" for k, v in counts["per_split"].items())
    return [
        (f"dataset {ref}: {counts['members']} CT series of {counts['patients']} patients ({splits}), "
        f"{result.files} files at {result.location}"),
        "  DICOM, NIfTI (+ slice->SOP UID sidecars) and PNG per split; manifests/ for Label Studio, MONAI,",
        "  nnU-Net and OHIF; croissant.json and DATASHEET.md describe it.",
        f"  see it:   lakehouse dataset show {ref} --config {config}",
        f"  pull it:  lakehouse dataset pull {ref} --to ./labeling --user demo-labeler --config {config}",
    ]


def _annotation_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The annotations table after the demo's import, one line per annotation."""
    lines = ["annotations (research zone, table annotations; the SEG objects reference the source slices):",
             "  annotation      status  round  annotator             series                 segments"]
    for row in rows:
        segments = ", ".join(f"{s['segment_number']}:{s['label']} {s['volume_ml']:.1f} ml" for s in row["segments"])
        lines.append(f"  {row['annotation_id'][:14]}  {row['status']:<6}  {row['round']:<5}  {row['annotator_id']:<20}  "
                     f"{row['SeriesInstanceUID'][:20]}…  {segments}")
    return lines
