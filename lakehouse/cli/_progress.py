"""An export's progress as the person running it sees it: a bar on a terminal (planned total,
objects done, rate, time left), else log lines at a steady interval (cron, Airflow)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lakehouse.cli._common import err_console


@dataclass(frozen=True)
class ProgressHooks:
    """``plan(total)`` once the run is planned, ``advance(objects)`` as batches land."""

    plan: Callable[[int], None]
    advance: Callable[[int], None]


class RateColumn(ProgressColumn):
    """Objects per second, as rich measures it over the last samples."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} objects/s" if task.speed else "- objects/s")


@contextmanager
def run_progress(description: str, *, bar: bool, log_every: float) -> Iterator[ProgressHooks]:
    """A bar when stderr is a terminal and ``bar`` (not --json); otherwise progress log lines every
    ``log_every`` seconds. ``LAKEHOUSE_NO_PROGRESS`` turns both off."""
    if os.environ.get("LAKEHOUSE_NO_PROGRESS"):
        yield ProgressHooks(plan=lambda total: None, advance=lambda objects: None)
    elif err_console.is_terminal:
        if not bar:
            yield ProgressHooks(plan=lambda total: None, advance=lambda objects: None)
            return
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn()
        )
        with Progress(*columns, console=err_console, transient=True) as shown:
            task = shown.add_task(description, total=None)
            yield ProgressHooks(
                plan=lambda total: shown.update(task, total=total), advance=lambda n: shown.advance(task, n)
            )
    else:
        from lakehouse.export.progress import log_to_stderr, logged_progress

        log_to_stderr()
        with logged_progress(log_every) as logged:
            yield ProgressHooks(plan=logged.plan, advance=logged.advance)
