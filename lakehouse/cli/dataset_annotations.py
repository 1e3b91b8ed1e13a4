"""`lakehouse dataset annotations import|list|export|agreement`: labels back into the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli._common import (
    ConfigOpt,
    DatasetProjectOpt,
    JsonOpt,
    UserOpt,
    acting,
    dataset_ref,
    emit,
    settings_from,
)

app = typer.Typer(
    help="Labels back from labeling and training tools (NIfTI label maps, DICOM SEG, Label Studio "
    "exports), stored as DICOM SEG tied to the exact de-identified source slices of a dataset version.",
    no_args_is_help=True,
)


@app.command("import")
def import_(
    ref: Annotated[str, typer.Argument(help="NAME@vN the labels were drawn on.")],
    source: Annotated[Path, typer.Option("--from", help="A label file or a folder of them.")],
    kind: Annotated[str, typer.Option("--kind", help="nifti (label maps named <case>.nii.gz), seg (DICOM SEG) or labelstudio (export JSON).")],
    round_: Annotated[str, typer.Option("--round", help="Labeling round.")] = "r1",
    label_map: Annotated[Path | None, typer.Option("--label-map", help="YAML naming each label value with a coded concept.")] = None,
    annotator: Annotated[str | None, typer.Option("--annotator", help="Who drew them (stored only as a pseudonymous id).")] = None,
    status: Annotated[str, typer.Option("--status", help="final (supersedes earlier final labels of the series) or draft.")] = "final",
    project: DatasetProjectOpt = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import labels (labelers, curators); each is checked against the series geometry and
    written as a SEG. Files that do not fit are listed with the reason, never guessed."""
    from lakehouse.workflows import import_annotations

    settings = settings_from(config)
    who = acting(settings, user).name
    where, name, number = dataset_ref(settings, ref, project, need_version=True)
    assert number is not None
    text = label_map.read_text(encoding="utf-8") if label_map else None
    result = import_annotations(settings, where, name, number, source, kind=kind, user=who, round_=round_,
                                label_map_text=text, annotator=annotator, status=status)
    lines = [f"imported {len(result.imported)} annotations into {name}@v{number}"]
    lines += [f"  refused {r['file']}: {r['code']}: {r['reason']}" for r in result.refused]
    emit(result.to_dict(), as_json, lines)


@app.command("list")
def list_(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    project: DatasetProjectOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Annotations of a dataset (or one version) with their segments and status."""
    from lakehouse import datasets

    settings = settings_from(config)
    where, name, number = dataset_ref(settings, ref, project, need_version=False)
    rows = datasets.list_annotations(settings, where, name, number)
    lines = [
        f"{r['annotation_id'][:12]}  v{r['version']}  {r['status']:<10}  {r['round']}  {r['annotator_id']}  "
        f"{r['tool']}  series {r['SeriesInstanceUID']}  "
        + ", ".join(f"{s['segment_number']}:{s['label']} {s['volume_ml']:.2f} ml" for s in r["segments"])
        for r in rows
    ]
    emit({"annotations": rows}, as_json, lines or ["no annotations"])


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME@vN.")],
    as_: Annotated[str, typer.Option("--as", help="seg (the SEG objects) or nifti (label maps on the series' NIfTI grid).")],
    to: Annotated[Path, typer.Option("--to", help="Destination folder.")],
    drafts: Annotated[bool, typer.Option("--drafts", help="Also draft annotations.")] = False,
    project: DatasetProjectOpt = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the version's final annotations (labelers, curators)."""
    from lakehouse import datasets

    settings = settings_from(config)
    who = acting(settings, user).name
    where, name, number = dataset_ref(settings, ref, project, need_version=True)
    assert number is not None
    statuses = ("final", "draft") if drafts else ("final",)
    files = datasets.export_annotations(settings, where, name, number, as_=as_, to=to, user=who, statuses=statuses)
    emit({"files": files, "to": str(to)}, as_json, f"wrote {len(files)} files to {to}")


@app.command()
def agreement(
    ref: Annotated[str, typer.Argument(help="NAME@vN.")],
    round_: Annotated[str | None, typer.Option("--round", help="Only this round.")] = None,
    project: DatasetProjectOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dice and volume difference per segment between annotators or rounds of the same series."""
    from lakehouse import datasets

    settings = settings_from(config)
    where, name, number = dataset_ref(settings, ref, project, need_version=True)
    assert number is not None
    rows = datasets.annotation_agreement(settings, where, name, number, round_=round_)
    lines = [f"{r['series']}  {r['a'][:12]} ({r['a_round']}) vs {r['b'][:12]} ({r['b_round']})  "
             + "  ".join(f"{k} {v}" for k, v in r.items() if k not in ("series", "a", "b", "a_round", "b_round"))
             for r in rows]
    emit({"agreement": rows}, as_json, lines or ["no series has two annotations to compare"])
