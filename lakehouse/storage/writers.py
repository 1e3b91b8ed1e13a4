"""Which process wrote something, so a sweep can tell an abandoned write from one in flight.

A PID names one process only within one boot of one machine and one PID namespace (a
container has its own): ``process_space`` names that space. A writer tagged with our space
and a PID that no longer runs is gone for certain (its temporary file is abandoned, its
lease stale); a writer from another space is judged by age alone.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

# A temporary file of a writer in another process space is abandoned after this long.
FOREIGN_TEMPORARY_SECONDS = 24 * 3600


@cache
def process_space() -> str | None:
    """This machine's boot and PID namespace (Linux), or None where that cannot be known."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def process_gone(space: str | None, pid: int) -> bool:
    """True only when ``pid`` of ``space`` certainly no longer runs (never for this process)."""
    if space is None or space != process_space() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def writer_tag() -> str:
    """``<space digest>-<pid>`` of this process, for names of its temporary files."""
    return f"{_space_digest(process_space())}-{os.getpid()}"


def tagged_writer_gone(tag: str) -> bool | None:
    """Whether the writer of a ``writer_tag`` is gone; None when the tag is not of this space."""
    digest, _, pid = tag.partition("-")
    if digest != _space_digest(process_space()) or not pid.isdigit() or process_space() is None:
        return None
    return process_gone(process_space(), int(pid))


def _space_digest(space: str | None) -> str:
    return hashlib.sha256(space.encode()).hexdigest()[:12] if space else "unknown"
