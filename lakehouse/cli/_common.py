"""Options and output shared by every command; the only place that prints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lakehouse.config import Settings, load_settings
from lakehouse.governance.identity import ASSERTED_WARNING, Identity, current_identity

console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="LAKEHOUSE_CONFIG", help="Path to lakehouse.toml (default: ./lakehouse.toml)."),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        envvar="LAKEHOUSE_USER",
        help="Who is acting. Under identity mode os or aws (the identity section of the config) it may only "
        "repeat the proved identity; taken as typed only in mode asserted (demos and tests).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


def settings_from(config: Path | None, *, require_file: bool = True) -> Settings:
    """The settings; under identity mode ``asserted`` every command warns once on stderr."""
    settings = load_settings(config, require_file=require_file)
    if settings.identity.mode == "asserted":
        _warn_asserted()
    return settings


@cache
def _warn_asserted() -> None:
    typer.echo(f"lakehouse: {ASSERTED_WARNING}", err=True)


def acting(settings: Settings, user: str | None) -> Identity:
    """The identity acting now, by the configured mode (``--user`` may only repeat a proved one)."""
    return current_identity(settings, user)


def interactive() -> bool:
    """Whether a person is at a terminal to answer a question (stdin and stderr are TTYs)."""
    return sys.stdin.isatty() and err_console.is_terminal


def show_on_stderr(lines: Iterable[str]) -> None:
    """Lines for the person at the terminal, kept off stdout (which stays for --json)."""
    for line in lines:
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC to the second, as text output shows times (``2026-05-01T12:00:00Z``)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def plain(value: Any) -> str:
    """A value as people read it: no Python reprs, ISO 8601 dates, ``-`` for nothing."""
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _json_value(value: Any) -> Any:
    """JSON for what json cannot encode itself: dates as ISO 8601, anything else as text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def emit(data: Any, as_json: bool, text: str | Iterable[str] | None = None) -> None:
    """Print a result: JSON for scripts, or the given text lines for people."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=_json_value))
        return
    if text is None:
        text = [f"{k}: {plain(v)}" for k, v in data.items()] if isinstance(data, dict) else [plain(data)]
    for line in [text] if isinstance(text, str) else text:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def report_failure(message: str, code: str, as_json: bool, details: dict[str, Any] | None = None) -> None:
    """A failure: one line on stderr and, with --json, one JSON object ``{"error", "code"}`` on stdout."""
    if as_json:
        error: dict[str, Any] = {"error": message, "code": code}
        if details:
            error["details"] = details
        typer.echo(json.dumps(error, indent=2, sort_keys=True, default=_json_value))
    typer.echo(f"lakehouse: {message}", err=True)


@contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n=1)``. Quiet with --json or when not a TTY."""
    show = enabled and err_console.is_terminal and not os.environ.get("LAKEHOUSE_NO_PROGRESS")
    if not show:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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


DatasetProjectOpt = Annotated[
    str | None, typer.Option("--project", help="The project (needed only when several have the dataset).")
]


def dataset_ref(settings: Settings, ref: str, project: str | None, *, need_version: bool) -> tuple[str, str, int | None]:
    """``NAME`` or ``NAME@vN`` on the command line: (project, name, version or None)."""
    from lakehouse import datasets

    name, number = datasets.parse_ref(ref)
    if need_version and number is None:
        raise datasets.DatasetError(f"{ref}: this command takes NAME@vN")
    return datasets.project_of(settings, name, project), name, number
