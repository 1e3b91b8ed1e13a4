"""`lakehouse synth` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="synth commands.", no_args_is_help=True)
