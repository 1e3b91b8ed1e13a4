"""`lakehouse dataset build|list|show|pull|withdraw`: labeling datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakehouse.cli import dataset_annotations
from lakehouse.cli._common import (
    ConfigOpt,
    DatasetProjectOpt,
    JsonOpt,
    UserOpt,
    acting,
    dataset_ref,
    emit,
    plain,
    progress,
    settings_from,
    timestamp,
)

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.datasets import Version

app = typer.Typer(
    help="Labeling datasets: versioned cohorts from a project's research tables, with patient-level "
    "splits that never move, in DICOM, NIfTI or PNG, with Label Studio, MONAI, nnU-Net and OHIF "
    "manifests and a dataset card. Curators build and withdraw; labelers and curators pull.",
    no_args_is_help=True,
)

app.add_typer(dataset_annotations.app, name="annotations")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


@app.command()
def build(
    name: Annotated[str, typer.Argument(help="Dataset name: lower-case letters, digits, '-'.")],
    project: Annotated[str, typer.Option("--project", help="The project whose research tables are selected from.")],
    where: Annotated[str | None, typer.Option("--where", help="SQL condition (DuckDB) over the view `selection` (series with their study's columns); subqueries may read studies, series, instances, attributes.")] = None,
    selection: Annotated[Path | None, typer.Option("--selection", help="YAML selection: modalities, body_parts, manufacturers, request_ids, patients, description_contains, study_date_from, study_date_to, sop_classes, min_instances.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Source versions to read: vN (those an earlier version of this dataset read) or studies=N,series=N,instances=N,attributes=N.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="A member is a series or a whole study.")] = "series",
    split: Annotated[str, typer.Option("--split", help="Split names and target ratios (patients, never members, are split).")] = "train=0.7,val=0.15,test=0.15",
    stratify: Annotated[list[str] | None, typer.Option("--stratify", help="Balance new patients within the values of this column (series or studies), e.g. Modality. Repeatable.")] = None,
    freeze: Annotated[list[str] | None, typer.Option("--freeze", help="A split that takes no new patient (e.g. test). Repeatable.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Comma-separated: dicom, nifti, png.")] = "dicom",
    manifest: Annotated[str, typer.Option("--manifest", help="Comma-separated: labelstudio (needs png), monai and nnunet (need nifti), ohif (needs dicom).")] = "",
    window: Annotated[str, typer.Option("--window", help="PNG window: lung, mediastinum, bone, brain, dicom (the object's own) or W/L, e.g. 400/40.")] = "dicom",
    png_bits: Annotated[int, typer.Option("--png-bits", help="PNG depth: 8 or 16.")] = 8,
    labels: Annotated[str | None, typer.Option("--labels", help="final: add each series' newest final annotation (label maps beside the NIfTI, SEG objects in the DICOM layout).")] = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the next version NAME/vN (curators). Refused when a patient or identical pixel data
    would fall in two splits, or when a source request is no longer approved."""
    from lakehouse import datasets

    settings = settings_from(config)
    who = acting(settings, user).name
    options = datasets.BuildOptions(
        project=project, name=name, selection=datasets.Selection.from_options(where, selection),
        pins=_pins(settings, project, name, as_of), unit=unit, splits=datasets.parse_splits(split),
        stratify=tuple(stratify or ()), frozen=tuple(freeze or ()), formats=_csv(fmt), manifests=_csv(manifest),
        window=window, png_bits=png_bits, labels=labels,
    )
    with progress("building", None, enabled=not as_json) as advance:
        result = datasets.build_dataset(settings, options, user=who, advance=advance)
    counts = result.version.details["counts"]
    per_split = ", ".join(f"{k} {v}" for k, v in counts["per_split"].items())
    emit(result.to_dict(), as_json, [
        (f"built {result.version.ref} of project {project}: {counts['members']} members of "
        f"{counts['patients']} patients ({per_split}), {result.files} files"),
        f"  at {result.location}",
        f"  {counts['exclusions']} exclusions (see `lakehouse dataset show {name}@v{result.version.version}`)",
        *_risk_lines(result.version.details),
        f"  pull it: lakehouse dataset pull {name}@v{result.version.version} --to DIR",
    ])


def _pins(settings: Settings, project: str, name: str, as_of: str | None) -> dict[str, int] | None:
    from lakehouse import datasets

    if as_of is None:
        return None
    text = as_of.strip()
    if text.startswith("v") and text[1:].isdigit():
        version = datasets.get_version(settings, project, datasets.parse_ref(name)[0], int(text[1:]))
        return {k: int(v) for k, v in version.details["sources"].items()}
    return datasets.parse_pins(text)


@app.command("list")
def list_(project: DatasetProjectOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every dataset version with its status (published, withdrawn, failed, reserved)."""
    from lakehouse import datasets

    settings = settings_from(config)
    found = [v for p in ([project] if project else datasets.projects(settings)) for v in datasets.list_versions(settings, p)]
    emit({"datasets": [v.to_dict() for v in found]}, as_json, [_line(v) for v in found] or ["no datasets"])


def _line(v: Version) -> str:
    counts = v.details.get("counts", {})
    what = f"{counts.get('members', '?')} members" if counts else ""
    why = f" ({v.reason})" if v.reason else ""
    return f"{v.project}/{v.ref}  {v.status}{why}  {what}  built {timestamp(v.built_at)} by {v.built_by}"


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN (default: the newest published version).")],
    diff: Annotated[str | None, typer.Option("--diff", help="Compare with this version (vM): members added and removed.")] = None,
    project: DatasetProjectOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A version: sources, selection, options, counts per split, exclusions with reasons."""
    from lakehouse import datasets

    settings = settings_from(config)
    where, name, number = dataset_ref(settings, ref, project, need_version=False)
    version = datasets.get_version(settings, where, name, number)
    if diff is not None:
        other = diff.strip().removeprefix("v")
        if not other.isdigit():
            raise datasets.DatasetError("--diff takes vM")
        change = datasets.diff(settings, where, name, int(other), version.version)
        lines = [f"{name} v{change.base} -> v{change.other}: {len(change.added)} added, {len(change.removed)} removed"]
        lines += [f"  + {m}" for m in change.added] + [f"  - {m}" for m in change.removed]
        lines += [f"  moved split: {m}" for m in change.moved]
        emit(change.to_dict(), as_json, lines)
        return
    lines = [_line(version)]
    for key in ("sources", "selection", "options", "counts", "requests"):
        if key in version.details:
            lines.append(f"  {key}: {plain(version.details[key])}")
    lines += _risk_lines(version.details)
    lines += [f"  excluded {e['format']} {e['series'] or e['member']}: {e['code']}: {e['reason']}"
              for e in version.details.get("exclusions", [])]
    emit(version.to_dict(), as_json, lines)


def _risk_lines(details: dict[str, Any]) -> list[str]:
    """k of the version over the quasi-identifiers its members carry (older versions have none)."""
    from lakehouse.governance.cohort import risk_line

    risk = details.get("risk")
    return [f"  k-anonymity: {risk_line(risk)}"] if risk else []


@app.command()
def pull(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN (default: the newest published version).")],
    to: Annotated[str, typer.Option("--to", help="Destination: a folder or s3://bucket/prefix (shared [s3] settings).")],
    split: Annotated[str | None, typer.Option("--split", help="Only this split's images (manifests and card always).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Only this format: dicom, nifti or png.")] = None,
    project: DatasetProjectOpt = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a published version (labelers, curators), every file checked against its checksum."""
    from lakehouse import datasets

    settings = settings_from(config)
    who = acting(settings, user).name
    where, name, number = dataset_ref(settings, ref, project, need_version=False)
    result = datasets.pull(settings, where, name, number, to, user=who, split=split, fmt=fmt)
    emit(result.to_dict(), as_json, f"pulled {result.version.ref}: {result.files} files, {result.bytes} bytes to {to}")


@app.command()
def withdraw(
    ref: Annotated[str, typer.Argument(help="NAME@vN to withdraw.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the version and shown to anyone who pulls).")],
    project: DatasetProjectOpt = None,
    user: UserOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw a version (curators): its files are removed and pull refuses it from then on."""
    from lakehouse import datasets

    settings = settings_from(config)
    who = acting(settings, user).name
    where, name, number = dataset_ref(settings, ref, project, need_version=True)
    assert number is not None
    version = datasets.withdraw(settings, where, name, number, user=who, reason=reason)
    emit(version.to_dict(), as_json, f"withdrew {version.ref}: {version.reason}")
