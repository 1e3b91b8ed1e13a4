"""The object-store interface.

``ObjectReader`` has only read methods (list, head, get, get_range); the archive
is always opened as one, so code holding the archive handle cannot write to it.
``ObjectStore`` adds put and delete for the writable zones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or HEAD tells about one object."""

    key: str
    size: int
    etag: str  # S3 ETag without quotes; for files "mtime_ns-size"
    last_modified: datetime | None = None
    storage_class: str | None = None
    # A local archive's symbolic link that is not followed: why (a reason code). Never read.
    link: str | None = None
    # S3 HEAD only: the restore status of an archived object (``x-amz-restore``) and the
    # Intelligent-Tiering archive tier it sits in (``x-amz-archive-status``); see ``storage.tiers``.
    restore: str | None = None
    archive_status: str | None = None


class ObjectReader(ABC):
    """Read-only access to a store rooted at a prefix. Keys are relative, '/'-separated."""

    uri: str

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order, fetched page by page."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Metadata of one object; raises ObjectNotFound."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object."""

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object)."""

    def exists(self, key: str) -> bool:
        from lakehouse.errors import ObjectNotFound

        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True


class ObjectStore(ObjectReader):
    """A writable zone (restricted, research, datasets)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> ObjectInfo:
        """Write an object atomically (readers see the old or the new bytes, never a mix)."""

    def put_deferred(self, key: str, data: bytes) -> None:
        """Write an object atomically, made durable later by ``sync``: a batch of writes pays one
        flush instead of one per object. Where ``put`` is durable at once (S3), it is ``put``."""
        self.put(key, data)

    def sync(self, keys: Iterable[str]) -> None:
        """Make the deferred writes of ``keys`` durable (nothing to do where ``put`` is)."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write an object only if none exists at ``key`` (atomically: of two racing
        creators exactly one wins). Returns False, writing nothing, when one exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; deleting a missing object is not an error."""

    def remove_temporary(self, prefix: str) -> int:
        """Delete the temporary files that writes killed midway left under the folder ``prefix``
        (they are never listed); returns how many. S3 writes are atomic and leave none."""
        return 0

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Move an object inside the store (publishing staged objects).

        Moving a missing ``src`` onto an existing ``dst`` is a no-op, so a move
        interrupted and repeated ends in the same state."""
