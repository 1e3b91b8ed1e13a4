"""Local folders as object stores."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.errors import ObjectNotFound, PermanentStorageError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore


class LocalReader(ObjectReader):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise PermanentStorageError(f"invalid object key {key!r}")
        return self.root.joinpath(*parts)

    @staticmethod
    def _info(key: str, stat: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self.root.is_dir():
            yield from self._walk(self.root, "", prefix)

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        # Sorting a folder's entries with "name/" for sub-folders gives key order,
        # as S3 lists; sub-folders outside the prefix are never entered.
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        named = sorted((e.name + "/" if e.is_dir() else e.name, e) for e in entries)
        for name, entry in named:
            key = rel + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix) and not name.startswith(".tmp-"):
                try:
                    yield self._info(key, entry.stat())
                except FileNotFoundError:
                    continue

    def head(self, key: str) -> ObjectInfo:
        try:
            return self._info(key, self._path(key).stat())
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                fh.seek(start)
                return fh.read(length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None


class LocalStore(LocalReader, ObjectStore):
    def put(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        with _synced_temp(path, data) as tmp:
            os.replace(tmp, path)
        return self.head(key)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with _synced_temp(path, data) as tmp:
            try:
                os.link(tmp, path)  # fails if ``path`` exists: the complete file appears, or nothing
            except FileExistsError:
                return False
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Remove folders left empty, as object stores have no empty 'folders'."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.exists():
            if target.exists():
                return
            raise ObjectNotFound(f"no object at key {src!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        self._prune(source.parent)


@contextmanager
def _synced_temp(path: Path, data: bytes) -> Iterator[str]:
    """``data`` in a temporary file next to ``path``, flushed to disk; removed afterwards
    unless it was renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)
