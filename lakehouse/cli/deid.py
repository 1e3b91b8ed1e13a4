"""`lakehouse deid`: ad-hoc de-identification of files and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli._common import ConfigOpt, JsonOpt, emit, progress, settings_from


def register(app: typer.Typer) -> None:
    """Adds the `deid` command."""
    app.command("deid")(deid)


def deid(
    inputs: Annotated[list[Path], typer.Argument(help="DICOM files or folders (read recursively).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for de-identified files (named by new SOP Instance UID).")],
    project: Annotated[str, typer.Option("--project", help="Project whose key drives pseudonyms and date shifts.")],
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="PS3.15 option, repeatable (e.g. retain-modified-dates, clean-descriptors)."),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File holding the project key as hex (without --config).")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """De-identify DICOM objects with the PS3.15 Basic Profile and the chosen options.

    The key comes from the project's key in the restricted zone when --config (or LAKEHOUSE_CONFIG)
    is given, else from --key-file or the LAKEHOUSE_DEID_KEY env var (hex, at least 32 bytes).
    Prints one line per object and a summary; source file names are never printed.
    """
    from lakehouse.deid import DeidSettings, parse_options
    from lakehouse.deid.batch import deidentify_files, source_files, summarize
    from lakehouse.export.keys import command_key

    options = parse_options(option or [])
    key = command_key(settings_from(config) if config is not None else None, project, key_file)
    settings = DeidSettings(project=project, key=key, options=options)
    files = source_files(inputs)
    outcomes = []
    with progress("de-identifying", len(files), enabled=not as_json) as advance:
        for outcome in deidentify_files(files, out, settings):
            outcomes.append(outcome)
            advance()
    summary = summarize(outcomes)
    lines = [o.line() for o in outcomes] + ["summary: " + ", ".join(f"{k}={v}" for k, v in summary.items())]
    emit({"objects": [o.to_dict() for o in outcomes], "summary": summary, "options": sorted(options)},
         as_json, lines)
