"""`lakehouse deid`: ad-hoc de-identification of files and folders."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds the `deid` command (filled in by the de-identification stage)."""
