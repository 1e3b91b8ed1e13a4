"""Options and output shared by every command; the only place that prints."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lakehouse.config import Settings, load_settings
from lakehouse.errors import ConfigError

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="LAKEHOUSE_CONFIG", help="Path to lakehouse.toml (default: ./lakehouse.toml)."),
]
UserOpt = Annotated[
    str | None,
    typer.Option("--user", "-u", envvar="LAKEHOUSE_USER", help="Who is acting (checked against the roles section of the config)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


def settings_from(config: Path | None, *, require_file: bool = True) -> Settings:
    return load_settings(config, require_file=require_file)


def require_user(user: str | None) -> str:
    if not user:
        raise ConfigError("no user given: pass --user or set LAKEHOUSE_USER")
    return user


def emit(data: Any, as_json: bool, text: str | Iterable[str] | None = None) -> None:
    """Print a result: JSON for scripts, or the given text lines for people."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    if text is None:
        text = [f"{k}: {v}" for k, v in data.items()] if isinstance(data, dict) else [str(data)]
    for line in [text] if isinstance(text, str) else text:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n=1)``. Quiet with --json or when not a TTY."""
    show = enabled and err_console.is_terminal and not os.environ.get("LAKEHOUSE_NO_PROGRESS")
    if not show:
        yield lambda n=1: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
