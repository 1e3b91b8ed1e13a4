"""How far a run is, for people who are not watching a terminal.

A terminal shows a bar (the CLI). A run that nobody watches live (cron, Airflow,
``spark-submit``) logs the same figures instead: one line per interval on the
``lakehouse.export.progress`` logger with the objects done of the planned total, the rate and
the time left, so a scheduled run is not silent for hours. Counts only: no key, no UID.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

LOGGER = logging.getLogger("lakehouse.export.progress")


@dataclass
class RunProgress:
    """Objects done of the planned total, counted from ``plan`` (a resumed run counts the
    batches it finds done at once, so its rate starts high and settles)."""

    clock: Callable[[], float] = time.monotonic
    total: int | None = None
    done: int = 0
    _started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def plan(self, total: int) -> None:
        with self._lock:
            self.total, self._started = total, self.clock()

    def advance(self, objects: int) -> None:
        with self._lock:
            self.done += objects

    def rate(self) -> float:
        elapsed = self.clock() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        with self._lock:
            rate = self.rate()
            if self.total is None:
                return f"export: planning, {self.done} objects done"
            share = f" ({self.done / self.total:.0%})" if self.total else ""
            left = self.total - self.done
            eta = f"ETA {_duration(left / rate)}" if rate > 0 and left > 0 else ("done" if left <= 0 else "ETA -")
            return f"export: {self.done}/{self.total} objects{share}, {rate:.1f} objects/s, {eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@contextmanager
def logged_progress(every: float, logger: logging.Logger = LOGGER) -> Iterator[RunProgress]:
    """A ``RunProgress`` logged every ``every`` seconds (at INFO) until the block ends; 0 = never."""
    progress = RunProgress()
    stop = threading.Event()

    def log_lines() -> None:
        while not stop.wait(every):
            logger.info(progress.line())

    ticker = threading.Thread(target=log_lines, name="lakehouse-progress", daemon=True)
    if every > 0:
        ticker.start()
    try:
        yield progress
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()


def log_to_stderr(logger: logging.Logger = LOGGER) -> None:
    """Send the progress lines to stderr with a timestamp, unless logging is set up already."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
