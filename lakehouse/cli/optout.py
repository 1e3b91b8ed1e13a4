"""`lakehouse optout` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="optout commands.", no_args_is_help=True)
