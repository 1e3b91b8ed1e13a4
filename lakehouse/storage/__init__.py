"""One object-store interface over local folders and S3.

``open_archive`` returns an ``ObjectReader`` (no write methods exist on it),
throttled by the process-wide archive throttle; a local archive follows symbolic
links only as ``[archive] follow_symlinks`` says. ``open_zone`` returns a
writable ``ObjectStore`` for restricted, research and datasets; the private zones
(restricted) keep local folders 0700 and files 0600.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.config import ArchiveSettings, Settings, ThrottleSettings, ZoneSettings
from lakehouse.errors import ConfigError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore
from lakehouse.storage.local import LINK_REASONS, LocalReader, LocalStore, keep_private, private_folders
from lakehouse.storage.throttle import Throttle, ThrottledReader, TokenBucket, with_retries
from lakehouse.storage.writers import (
    FOREIGN_TEMPORARY_SECONDS,
    process_gone,
    process_space,
    tagged_writer_gone,
    writer_tag,
)

if TYPE_CHECKING:
    from lakehouse.storage.s3 import ArchiveRestorer

__all__ = [
    "FOREIGN_TEMPORARY_SECONDS",
    "LINK_REASONS",
    "PRIVATE_ZONES",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "Throttle",
    "ThrottledReader",
    "TokenBucket",
    "archive_throttle",
    "keep_private",
    "open_archive",
    "open_location",
    "open_restorer",
    "open_zone",
    "private_folders",
    "process_gone",
    "process_space",
    "tagged_writer_gone",
    "with_retries",
    "writer_tag",
]

# Zones holding identified data: local folders 0700, files 0600, whatever the umask.
PRIVATE_ZONES = frozenset({"restricted"})

_throttles: dict[tuple[str, ThrottleSettings], Throttle] = {}
_throttles_lock = threading.Lock()


def archive_throttle(settings: Settings) -> Throttle:
    """The one throttle of this process for the configured archive."""
    t = settings.throttle
    key = (settings.archive.uri, t)
    with _throttles_lock:
        if key not in _throttles:
            _throttles[key] = Throttle(
                t.requests_per_second,
                t.bytes_per_second,
                adaptive=t.adaptive,
                slow_request_seconds=t.slow_request_seconds,
                min_fraction=t.min_fraction,
            )
        return _throttles[key]


def _raw_reader(zone: ArchiveSettings, throttle: ThrottleSettings) -> ObjectReader:
    if zone.is_s3:
        from lakehouse.storage.s3 import S3Reader

        retry = {
            "max_retries": throttle.max_retries,
            "base": throttle.backoff_base_seconds,
            "cap": throttle.backoff_max_seconds,
        }
        return S3Reader(zone, timeout=throttle.timeout_seconds, list_retry=retry)
    return LocalReader(zone.local_path, follow_symlinks=zone.follow_symlinks)


def open_archive(settings: Settings) -> ObjectReader:
    """The archive, read-only by construction, throttled and retrying."""
    t = settings.throttle
    return ThrottledReader(
        _raw_reader(settings.archive, t),
        archive_throttle(settings),
        max_retries=t.max_retries,
        backoff_base=t.backoff_base_seconds,
        backoff_max=t.backoff_max_seconds,
    )


def open_restorer(settings: Settings) -> ArchiveRestorer | None:
    """What the operator's ``export restore`` requests restores through, throttled with the
    archive's reads; None for a local archive (its tier is ``local``: nothing to restore)."""
    if not settings.archive.is_s3:
        return None
    from lakehouse.storage.s3 import ArchiveRestorer

    t = settings.throttle
    retry = {"max_retries": t.max_retries, "base": t.backoff_base_seconds, "cap": t.backoff_max_seconds}
    return ArchiveRestorer(settings.archive, archive_throttle(settings), timeout=t.timeout_seconds, retry=retry)


def open_zone(settings: Settings, name: str) -> ObjectStore:
    """A writable zone. The archive is refused: it is never written."""
    if name == "archive":
        raise ConfigError("the archive zone is read-only; use open_archive()")
    zone = settings.zone(name)
    if zone.is_s3:
        from lakehouse.storage.s3 import S3Store

        return S3Store(zone)
    return LocalStore(zone.local_path, private=name in PRIVATE_ZONES)


def open_location(settings: Settings, uri: str) -> ObjectStore:
    """A writable place outside the zones (where a user pulls a dataset to): a local folder,
    or ``s3://bucket/prefix`` reached with the shared ``[s3]`` settings."""
    if uri.startswith("s3://"):
        from lakehouse.storage.s3 import S3Store

        return S3Store(ZoneSettings(name="destination", uri=uri, **asdict(settings.s3)))
    return LocalStore(Path(uri.removeprefix("file://")).resolve())
