"""Incremental, header-only scan of the archive into the catalog table.

One sync: list the archive, compare each listed (key, etag, size) with the
catalog, read the headers of added and changed objects only (ranged GETs through
the shared, throttled archive reader: a pool of ``catalog.workers`` threads on S3,
where reads wait on the network; in the calling thread on local folders, where a
read is a page-cache copy and threads would only take turns on the GIL), tombstone
keys that disappeared, flag duplicate SOP Instance UIDs, and upsert the changed rows.
A symbolic link a local archive does not follow gets a row with parse status
``symlink`` and its reason code, and is never read.

Commits are MERGEs by key, one per ``catalog.batch_size`` objects read and a
last one for tombstones and duplicate flags. Every committed row is true of
the object version it names, so a sync killed between commits leaves a table
a re-run completes (it only redoes the uncommitted reads).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

import pyarrow as pa

from lakehouse import lake, lineage
from lakehouse.catalog.headers import SYMLINK, SharedReads, local_archive, read_object
from lakehouse.config import Settings
from lakehouse.dicom.header import ERROR, Header
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.errors import LakehouseError
from lakehouse.storage import ObjectInfo, ObjectReader, open_archive


@dataclass
class SyncResult:
    """Counts of one catalog sync."""

    listed: int = 0
    read: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    warnings: int = 0
    duplicates: int = 0
    symlinks: int = 0  # new or changed links cataloged as such, not followed
    bytes_read: int = 0
    commits: int = 0
    seconds: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        links = f"{self.symlinks} symbolic links not followed, " if self.symlinks else ""
        return (
            f"{self.listed} listed, {self.read} read ({self.added} added, {self.changed} changed), "
            f"{self.unchanged} unchanged, {self.deleted} deleted, {self.failed} failed, "
            f"{self.duplicates} duplicate objects, {links}{self.bytes_read} bytes read in {self.seconds:.1f}s"
        )


class _Known(NamedTuple):
    """What the catalog already says about one key (a tuple: one per catalog row, built fast)."""

    etag: str
    size: int
    deleted: bool
    sop_instance_uid: str | None
    duplicate: bool


@lineage.emits(lineage.CATALOG_SYNC)
def sync_catalog(settings: Settings, *, progress: Callable[[int], None] | None = None) -> SyncResult:
    """Bring the catalog up to date with the archive; see the module docstring."""
    started = time.monotonic()
    batch_size = settings.catalog.batch_size

    location = lake.table(settings, "catalog")
    catalog = _Catalog(location.read())
    known = catalog.known
    archive = open_archive(settings)
    result = SyncResult()
    reasons: Counter[str] = Counter()
    listed: set[str] = set()
    # A lifecycle rule moves an object to another storage class without changing its ETag:
    # such rows get the listed class (no read), so reviews price what the archive holds now.
    stored_classes = catalog.table.column("storage_class").to_pylist()
    reclassified: list[dict[str, Any]] = []

    def to_read() -> Iterator[ObjectInfo]:
        for info in archive.list():
            result.listed += 1
            listed.add(info.key)
            seen = known.get(info.key)
            if seen and not seen.deleted and seen.etag == info.etag and seen.size == info.size:
                result.unchanged += 1
                if info.storage_class and info.storage_class != stored_classes[catalog.position[info.key]]:
                    reclassified.append({**catalog.full_row(info.key), "storage_class": info.storage_class})
                if progress:
                    progress(1)
                continue
            yield info

    # pydicom warns and logs (sometimes quoting values) about odd headers; never printed.
    with quiet_pydicom(), ExitStack() as stack:
        read_batch = _batch_reader(settings, archive, stack)
        pending = to_read()
        while batch := list(islice(pending, batch_size)):
            rows: list[dict[str, Any]] = []
            for info, outcome in zip(batch, read_batch(batch), strict=True):
                if progress:
                    progress(1)
                if isinstance(outcome, str):  # the object could not be read at all
                    result.failed += 1
                    reasons[outcome] += 1
                    continue
                if outcome.status == SYMLINK:
                    result.symlinks += 1
                    rows.append(_row(info, outcome))
                    continue
                seen = known.get(info.key)
                if seen is None or seen.deleted:
                    result.added += 1
                else:
                    result.changed += 1
                result.read += 1
                result.bytes_read += outcome.bytes_read
                if outcome.status == ERROR:
                    result.failed += 1
                    reasons[outcome.code or "unknown"] += 1
                elif outcome.reason:
                    result.warnings += 1
                row = _row(info, outcome)
                rows.append(row)
            _commit(location, rows, catalog, result, final=False)
        live = sum(1 for seen in known.values() if not seen.deleted)
        if not listed and live:
            # An empty listing is far likelier a wrong [archive] uri or a permissions change
            # than an archive emptied overnight: refuse rather than tombstone everything.
            raise LakehouseError(
                f"the archive listing is empty but the catalog has {live} live objects; "
                "nothing was tombstoned (check [archive] uri and read permissions)"
            )
        tombstones = []
        for key, seen in known.items():
            if key not in listed and not seen.deleted:
                tombstones.append(
                    {**catalog.full_row(key), "deleted": True, "duplicate_sop_instance": False, "scanned_at": _now()}
                )
                result.deleted += 1
        _commit(location, tombstones + reclassified, catalog, result, final=True)

    result.duplicates = sum(1 for seen in known.values() if seen.duplicate and not seen.deleted)
    result.failure_reasons = dict(sorted(reasons.items()))
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _batch_reader(
    settings: Settings, archive: ObjectReader, stack: ExitStack
) -> Callable[[list[ObjectInfo]], Iterable[Header | str]]:
    """How a batch is read (see ``catalog.headers``): threads on S3, this process plus a worker
    process on a local folder where that can pay, else this thread alone."""
    options = settings.catalog

    def read(info: ObjectInfo) -> Header | str:
        return read_object(archive, info, options.header_bytes, options.max_header_bytes)

    if settings.archive.is_s3:
        pool = stack.enter_context(ThreadPoolExecutor(options.workers, thread_name_prefix="catalog"))
        return lambda batch: pool.map(read, batch)
    local = local_archive(settings)
    if local is not None:
        shared = SharedReads(archive, local)
        stack.callback(shared.close)
        return shared.read
    return lambda batch: map(read, batch)


def _commit(
    location: lake.Table, rows: list[dict[str, Any]], catalog: _Catalog, result: SyncResult, *, final: bool
) -> None:
    """Upsert ``rows`` plus any existing row whose duplicate flag they change."""
    changed = {row["key"] for row in rows}
    changed |= catalog.record(rows)
    if not changed:
        return
    out = []
    for key in sorted(changed):
        row = dict(catalog.full_row(key))
        row["duplicate_sop_instance"] = catalog.known[key].duplicate
        catalog.written[key] = row
        out.append(row)
    location.merge(
        location.spec.to_arrow(out), metadata={"lakehouse.operation": "catalog_sync", "final": final, "rows": len(out)}
    )
    result.commits += 1


class _Catalog:
    """What one sync knows of the catalog, kept small: the table as read stays columnar
    (a row becomes a dict only when it must be written again), ``known`` holds the few
    fields the comparison needs, and ``by_uid`` groups live keys by SOP Instance UID so
    duplicate flags are recomputed only for the UIDs a batch touched."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.position = {key: i for i, key in enumerate(table.column("key").to_pylist())}
        columns = [table.column(name).to_pylist() for name in _KNOWN_COLUMNS]
        self.known = {values[0]: _known(dict(zip(_KNOWN_COLUMNS, values, strict=True))) for values in zip(*columns)}
        self.written: dict[str, dict[str, Any]] = {}
        self.by_uid: dict[str, set[str]] = {}
        for key, seen in self.known.items():
            if _live_uid(seen):
                self._group(seen).add(key)

    def full_row(self, key: str) -> dict[str, Any]:
        if key in self.written:
            return self.written[key]
        return dict(self.table.slice(self.position[key], 1).to_pylist()[0])

    def record(self, rows: list[dict[str, Any]]) -> set[str]:
        """Take in rows about to be written; return the keys whose duplicate flag flips."""
        candidates: set[str] = set()
        for row in rows:
            key = row["key"]
            before, after = self.known.get(key), _known(row)
            if before is not None and _live_uid(before):
                group = self._group(before)
                group.discard(key)
                candidates |= group
            self.written[key] = row
            self.known[key] = after
            if _live_uid(after):
                group = self._group(after)
                group.add(key)
                candidates |= group
            candidates.add(key)
        flips = set()
        for key in candidates:
            seen = self.known[key]
            flag = _live_uid(seen) and len(self._group(seen)) > 1
            if flag != seen.duplicate:
                self.known[key] = seen._replace(duplicate=flag)
                flips.add(key)
        return flips

    def _group(self, seen: _Known) -> set[str]:
        return self.by_uid.setdefault(str(seen.sop_instance_uid), set())


def _live_uid(seen: _Known) -> bool:
    return bool(seen.sop_instance_uid) and not seen.deleted


_KNOWN_COLUMNS = ("key", "etag", "size", "deleted", "sop_instance_uid", "duplicate_sop_instance")


def _known(row: dict[str, Any]) -> _Known:
    return _Known(
        etag=row["etag"],
        size=int(row["size"]),
        deleted=bool(row["deleted"]),
        sop_instance_uid=row.get("sop_instance_uid"),
        duplicate=bool(row.get("duplicate_sop_instance")),
    )


def _row(info: ObjectInfo, header: Header) -> dict[str, Any]:
    return {
        "key": info.key,
        "size": info.size,
        "etag": info.etag,
        "last_modified": info.last_modified,
        "storage_class": info.storage_class,
        **header.fields,
        "transfer_syntax_uid": header.transfer_syntax_uid,
        "parse_status": header.status,
        "parse_error": header.reason,
        "header_bytes_read": header.bytes_read,
        "duplicate_sop_instance": False,
        "deleted": False,
        "scanned_at": _now(),
    }


def _now() -> datetime:
    return datetime.now(UTC)
