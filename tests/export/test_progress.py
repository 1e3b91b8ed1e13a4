"""Progress people can follow: a bar on a terminal (planned total, objects done, rate, ETA) and,
when nobody watches a terminal (cron, Airflow), the same figures as log lines at an interval."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from lakehouse_testing import Prepared

from lakehouse.export.progress import RunProgress

LOG_LINE = re.compile(
    r"\S+ lakehouse\.export\.progress: export: (?P<done>\d+)/(?P<total>\d+) objects \(\d+%\), "
    r"[\d.]+ objects/s, (ETA \d+:\d\d:\d\d|ETA -|done)"
)


def test_a_progress_line_has_counts_rate_and_eta() -> None:
    now = [100.0]
    progress = RunProgress(clock=lambda: now[0])
    assert progress.line() == "export: planning, 0 objects done"
    progress.plan(200)
    now[0] += 5
    progress.advance(50)
    assert progress.line() == "export: 50/200 objects (25%), 10.0 objects/s, ETA 0:00:15"
    now[0] += 15
    progress.advance(150)
    assert progress.line() == "export: 200/200 objects (100%), 10.0 objects/s, done"


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "FORCE_COLOR", "TERM"))}
    return {**clean, **extra}


def test_a_run_without_a_terminal_logs_its_progress_at_an_interval(prepared: Prepared) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "export", "run", prepared.request_id, "--workers", "1", "--json",
         "--user", "olga", "--config", str(prepared.config)],
        capture_output=True, text=True, timeout=600, check=False,
        env=_env(LAKEHOUSE_EXPORT_PROGRESS_LOG_SECONDS="0.2"),
    )
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.splitlines() if "lakehouse.export.progress" in line]
    lines = [LOG_LINE.fullmatch(line) for line in logged if not line.endswith("planning, 0 objects done")]
    assert len(lines) >= 2 and all(lines), done.stderr
    planned = {int(m["total"]) for m in lines if m}
    assert len(planned) == 1 and planned.pop() > 0
    counts = [int(m["done"]) for m in lines if m]
    assert counts == sorted(counts)


def test_a_run_on_a_terminal_shows_a_bar_with_total_rate_and_eta(prepared: Prepared) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "export", "run", prepared.request_id, "--workers", "1",
         "--user", "olga", "--config", str(prepared.config)],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
        env=_env(TERM="xterm", COLUMNS="120", LINES="40"),
    )
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.wait(timeout=600) == 0
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", shown).decode(errors="replace")
    planned = re.search(r"exported \d+ of (\d+) objects", text)
    assert planned, text[-2000:]
    assert re.search(rf"exporting .*\b\d+/{planned[1]}\b.*objects/s", text), text[-2000:]
