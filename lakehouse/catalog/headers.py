"""Reading the headers a sync needs: in the sync's thread, a pool of threads (S3) or, on a
local folder, the sync's process plus one worker process.

On S3 a read waits on the network, so threads overlap the waits. On a local folder a read is
a page-cache copy and parsing is pure Python, so the CPU bounds a sync and threads would only
take turns on the GIL; a second process doubles the parsing where a second core is free. The
two processes take chunks of a batch from opposite ends (the sync from the front, the worker
from the back), so neither waits for the other however fast each runs, and results stay in
listing order.

The worker runs only where it can pay: a local archive read without throttle caps (under a
cap the cap bounds a sync, not the CPU, and one process honours it exactly), a second core,
and a batch long enough to outlast the worker's start; and only where it may start (the
calling script would not run again in it: ``lakehouse.processes``). It receives no settings (nothing
secret travels), only the archive folder and its link policy, and reads through the same
read-only ``LocalReader`` (a local folder raises no transient errors to retry).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache

from lakehouse.config import Settings
from lakehouse.dicom.header import Header, read_header
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.errors import StorageError
from lakehouse.processes import workers_allowed
from lakehouse.storage import LINK_REASONS, LocalReader, ObjectInfo, ObjectReader

SYMLINK = "symlink"  # parse status of a link the archive does not follow
CHUNK = 100  # objects per hand-over between the processes
# A smaller batch ends before a worker is up (~0.2 s to start an interpreter and import this
# module, ~140 µs an object here), and would wait for the two chunks queued to it.
WORKER_MIN_OBJECTS = 1500


def read_object(archive: ObjectReader, info: ObjectInfo, header_bytes: int, max_header_bytes: int) -> Header | str:
    """The header of one object, or a reason code when the store would not give its bytes.
    A link that is not followed is not read: its header says why."""
    if info.link is not None:
        return Header(status=SYMLINK, reason=f"{info.link}: {LINK_REASONS[info.link]}")
    try:
        return read_header(
            lambda start, length: archive.get_range(info.key, start, length),
            info.size,
            header_bytes=header_bytes,
            max_header_bytes=max_header_bytes,
        )
    except StorageError as exc:
        return f"read_failed_{type(exc).__name__}"


@dataclass(frozen=True)
class LocalArchive:
    """What a worker process needs to read a local archive like the sync does."""

    root: str
    follow_symlinks: str
    header_bytes: int
    max_header_bytes: int


def local_archive(settings: Settings) -> LocalArchive | None:
    """The archive as a worker process reads it, or None where a worker cannot pay (S3, a
    throttle cap, one core) or may not start (a calling script without a ``__main__`` guard,
    ``lakehouse.processes``)."""
    archive, throttle = settings.archive, settings.throttle
    if archive.is_s3 or throttle.requests_per_second or throttle.bytes_per_second or (os.cpu_count() or 1) < 2:
        return None
    if not workers_allowed():
        return None
    options = settings.catalog
    return LocalArchive(
        str(archive.local_path), archive.follow_symlinks, options.header_bytes, options.max_header_bytes
    )


def read_chunk(local: LocalArchive, infos: list[ObjectInfo]) -> list[Header | str]:
    """A worker process's task: the headers of ``infos``, in order."""
    archive = _archive(local)
    with quiet_pydicom():  # pydicom's warnings and log records may quote values
        return [read_object(archive, info, local.header_bytes, local.max_header_bytes) for info in infos]


@cache
def _archive(local: LocalArchive) -> ObjectReader:
    return LocalReader(local.root, follow_symlinks=local.follow_symlinks)


class SharedReads:
    """Reads batches in this process and one worker process, started for the first batch of
    at least ``WORKER_MIN_OBJECTS`` objects. A worker that dies only slows the sync: its chunks
    are read here."""

    def __init__(self, archive: ObjectReader, local: LocalArchive) -> None:
        self.archive = archive
        self.local = local
        self.pool: ProcessPoolExecutor | None = None
        self.broken = False

    def read(self, batch: list[ObjectInfo]) -> Iterator[Header | str]:
        chunks = [batch[i : i + CHUNK] for i in range(0, len(batch), CHUNK)]
        given = self._give(chunks)
        for index, chunk in enumerate(chunks):
            future = given.get(index)
            if future is not None and not future.cancel():  # the worker took it (or holds it)
                try:
                    outcomes = future.result()
                except BrokenProcessPool:
                    self.broken = True
                else:
                    yield from outcomes
                    continue
            for info in chunk:
                yield read_object(self.archive, info, self.local.header_bytes, self.local.max_header_bytes)

    def _give(self, chunks: list[list[ObjectInfo]]) -> dict[int, Future[list[Header | str]]]:
        """Hand every chunk to the worker, the last first; this process takes back, from the
        front, the ones the worker has not started when it gets to them."""
        if self.broken or (self.pool is None and sum(map(len, chunks)) < WORKER_MIN_OBJECTS):
            return {}
        if self.pool is None:
            # spawn: a clean interpreter (no inherited threads or locks); start() returns at once
            # and the worker joins in when it is up.
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        given = {}
        try:
            for index in reversed(range(len(chunks))):
                given[index] = self.pool.submit(read_chunk, self.local, chunks[index])
        except BrokenProcessPool:
            self.broken = True
        return given

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
