"""One object-store interface over local folders and S3.

``open_archive`` returns an ``ObjectReader`` (no write methods exist on it),
throttled by the process-wide archive throttle. ``open_zone`` returns a
writable ``ObjectStore`` for restricted, research and datasets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from lakehouse.config import Settings, ZoneSettings
from lakehouse.errors import ConfigError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore
from lakehouse.storage.local import LocalReader, LocalStore
from lakehouse.storage.throttle import Throttle, ThrottledReader, TokenBucket, with_retries

__all__ = [
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "Throttle",
    "ThrottledReader",
    "TokenBucket",
    "archive_throttle",
    "open_archive",
    "open_zone",
    "with_retries",
]

_throttles: dict[str, Throttle] = {}
_throttles_lock = threading.Lock()


def archive_throttle(settings: Settings) -> Throttle:
    """The one throttle of this process for the configured archive."""
    t = settings.section("throttle")
    key = f"{settings.archive.uri}|{t.get('requests_per_second')}|{t.get('bytes_per_second')}"
    with _throttles_lock:
        if key not in _throttles:
            _throttles[key] = Throttle(
                float(t.get("requests_per_second", 0)),
                float(t.get("bytes_per_second", 0)),
                adaptive=bool(t.get("adaptive", True)),
                slow_request_seconds=float(t.get("slow_request_seconds", 2.0)),
                min_fraction=float(t.get("min_fraction", 0.05)),
            )
        return _throttles[key]


def _raw_reader(zone: ZoneSettings, throttle: Mapping[str, Any]) -> ObjectReader:
    if zone.is_s3:
        from lakehouse.storage.s3 import S3Reader

        retry = {
            "max_retries": int(throttle.get("max_retries", 5)),
            "base": float(throttle.get("backoff_base_seconds", 0.2)),
            "cap": float(throttle.get("backoff_max_seconds", 10.0)),
        }
        return S3Reader(zone, timeout=float(throttle.get("timeout_seconds", 30.0)), list_retry=retry)
    return LocalReader(zone.local_path)


def open_archive(settings: Settings) -> ObjectReader:
    """The archive, read-only by construction, throttled and retrying."""
    t = settings.section("throttle")
    return ThrottledReader(
        _raw_reader(settings.archive, t),
        archive_throttle(settings),
        max_retries=int(t.get("max_retries", 5)),
        backoff_base=float(t.get("backoff_base_seconds", 0.2)),
        backoff_max=float(t.get("backoff_max_seconds", 10.0)),
    )


def open_zone(settings: Settings, name: str) -> ObjectStore:
    """A writable zone. The archive is refused: it is never written."""
    if name == "archive":
        raise ConfigError("the archive zone is read-only; use open_archive()")
    zone = settings.zone(name)
    if zone.is_s3:
        from lakehouse.storage.s3 import S3Store

        return S3Store(zone)
    return LocalStore(zone.local_path)
