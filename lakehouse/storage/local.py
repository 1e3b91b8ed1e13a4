"""Local folders as object stores.

Symbolic links. The zones hold only what lakehouse writes, so there links are whatever
the OS makes of them. A local archive is somebody else's folder: a link in it may point
anywhere (``/etc``, another patient store) or back at itself. Its reader therefore takes a
policy, ``never`` (the default) or ``inside``: a link it does not follow is listed as an
object with ``ObjectInfo.link`` set to a reason code (``LINK_REASONS``) and is never read,
and reads refuse any key whose path passes through such a link. Following is a walk over
real paths: a folder link is not entered when its target holds a folder being walked, so a
loop ends as a ``symlink_loop`` entry, never as endless recursion.

Private zones. The restricted zone holds identified data: a ``private`` store creates its
folders 0700 and its files 0600 whatever the process umask, and ``keep_private`` gives
files another library wrote (deltalake writes with the umask) the same modes.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.errors import ObjectNotFound, PermanentStorageError
from lakehouse.storage.base import ObjectInfo, ObjectReader, ObjectStore
from lakehouse.storage.writers import FOREIGN_TEMPORARY_SECONDS, tagged_writer_gone, writer_tag

PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600
# A write in progress, renamed into place when complete; never listed. Its name carries the
# writer (``writers.writer_tag``), so ``remove_temporary`` removes only abandoned ones.
TEMPORARY_PREFIX = ".tmp-"
FOLLOW_NEVER, FOLLOW_INSIDE = "never", "inside"

# Why a listed link is not followed: stable codes with a fixed text (the catalog's parse reason).
LINK_REASONS: dict[str, str] = {
    "symlink": "a symbolic link; [archive] follow_symlinks is never",
    "symlink_outside": "a symbolic link whose target is outside the archive folder",
    "symlink_loop": "a symbolic link that leads back into a folder it is in",
    "symlink_broken": "a symbolic link whose target does not exist or cannot be reached",
}


class LocalReader(ObjectReader):
    """Objects under a folder. ``follow_symlinks`` is the archive's link policy
    (``never`` or ``inside``, see the module docstring); None leaves links to the OS."""

    def __init__(self, root: str | os.PathLike[str], *, follow_symlinks: str | None = None) -> None:
        if follow_symlinks not in (None, FOLLOW_NEVER, FOLLOW_INSIDE):
            raise ValueError(f"follow_symlinks must be {FOLLOW_NEVER!r} or {FOLLOW_INSIDE!r}")
        self.root = Path(root)
        self.uri = str(self.root)
        self.follow_symlinks = follow_symlinks
        self._real_root = os.path.realpath(self.root)

    @staticmethod
    def _parts(key: str) -> list[str]:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise PermanentStorageError(f"invalid object key {key!r}")
        return parts

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*self._parts(key))

    def _readable(self, key: str) -> Path:
        """The path of ``key``, refused when the link policy does not let a read reach it."""
        path = self._path(key)
        if self.follow_symlinks is None:
            return path
        try:
            real = os.path.realpath(path, strict=True)
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at key {key!r}") from None
        except OSError:  # a loop on the way
            raise PermanentStorageError("the object is behind a symbolic link that is not followed") from None
        if self.follow_symlinks == FOLLOW_NEVER:
            allowed = real == os.path.join(self._real_root, *self._parts(key))
        else:
            allowed = _within(real, self._real_root) and real != self._real_root
        if not allowed:
            raise PermanentStorageError("the object is behind a symbolic link that is not followed")
        return path

    @staticmethod
    def _info(key: str, stat_result: os.stat_result, link: str | None = None) -> ObjectInfo:
        etag = f"{stat_result.st_mtime_ns:x}-{stat_result.st_size:x}"
        return ObjectInfo(
            key=key,
            size=stat_result.st_size,
            # A link's reason is part of its version: a new policy or target re-catalogs it.
            etag=etag if link is None else f"{link}-{etag}",
            last_modified=datetime.fromtimestamp(stat_result.st_mtime, tz=UTC),
            link=link,
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if self.root.is_dir():
            yield from self._walk(self.root, "", prefix, (self._real_root,))

    def _walk(self, folder: Path, rel: str, prefix: str, walking: tuple[str, ...]) -> Iterator[ObjectInfo]:
        """Objects under ``folder``; ``walking`` holds the real paths of the folders being walked."""
        # Sorting a folder's entries with "name/" for sub-folders gives key order,
        # as S3 lists; sub-folders outside the prefix are never entered.
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        named: list[tuple[str, os.DirEntry[str], str | None, str | None]] = []
        for entry in entries:
            link, target = None, None
            if self.follow_symlinks is not None and entry.is_symlink():
                link, target = self._follow(entry, walking)
                is_folder = target is not None and os.path.isdir(target)
            else:
                is_folder = entry.is_dir()
            named.append((entry.name + "/" if is_folder else entry.name, entry, link, target))
        for name, entry, link, target in sorted(named, key=lambda item: item[0]):
            key = rel + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    real = target or os.path.join(walking[-1], entry.name)
                    yield from self._walk(Path(entry.path), key, prefix, (*walking, real))
            elif key.startswith(prefix) and not name.startswith(TEMPORARY_PREFIX):
                try:
                    yield self._info(key, entry.stat(follow_symlinks=link is None), link)
                except FileNotFoundError:
                    continue

    def _follow(self, entry: os.DirEntry[str], walking: tuple[str, ...]) -> tuple[str | None, str | None]:
        """(why the link is not followed, None) or (None, the real path of its target)."""
        if self.follow_symlinks != FOLLOW_INSIDE:
            return "symlink", None
        try:
            target = os.path.realpath(entry.path, strict=True)
        except OSError as exc:
            return ("symlink_loop" if exc.errno == errno.ELOOP else "symlink_broken"), None
        if not _within(target, self._real_root):
            return "symlink_outside", None
        if os.path.isdir(target) and any(_within(folder, target) for folder in walking):
            return "symlink_loop", None
        return None, target

    def head(self, key: str) -> ObjectInfo:
        try:
            return self._info(key, self._readable(key).stat())
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._readable(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._readable(key), "rb") as fh:
                fh.seek(start)
                return fh.read(length)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object at key {key!r}") from None


class LocalStore(LocalReader, ObjectStore):
    """A writable zone on a local folder; ``private`` for the restricted zone (0700/0600)."""

    def __init__(self, root: str | os.PathLike[str], *, private: bool = False) -> None:
        super().__init__(root)
        self.private = private

    def put(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        with self._synced_temp(path, data) as tmp:
            os.replace(tmp, path)
        return self.head(key)

    def put_deferred(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._synced_temp(path, data, fsync=False) as tmp:
            os.replace(tmp, path)

    def sync(self, keys: Iterable[str]) -> None:
        """fsync each file, then each folder holding one (so the renames that put them in place
        survive a crash too)."""
        folders = set()
        for key in keys:
            path = self._path(key)
            _fsync(path)
            folders.add(path.parent)
        for folder in folders:
            _fsync(folder)

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with self._synced_temp(path, data) as tmp:
            try:
                os.link(tmp, path)  # fails if ``path`` exists: the complete file appears, or nothing
            except FileExistsError:
                return False
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def remove_temporary(self, prefix: str) -> int:
        """Only files whose writer is gone: a process of this machine that no longer runs, or
        (another machine's, or untagged) older than ``FOREIGN_TEMPORARY_SECONDS``."""
        folder = self.root.joinpath(*self._parts(prefix)) if prefix.strip("/") else self.root
        removed = 0
        for top, _folders, files in os.walk(folder):
            for name in files:
                if name.startswith(TEMPORARY_PREFIX) and _abandoned(Path(top, name)):
                    Path(top, name).unlink(missing_ok=True)
                    removed += 1
        if removed:
            for top, _folders, _files in list(os.walk(folder, topdown=False)):
                self._prune(Path(top))
        return removed

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
        self._folders(target.parent)
        os.replace(source, target)
        self._prune(source.parent)

    def _folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents (private: each new one 0700)."""
        if self.private:
            private_folders(self.root, folder)
        else:
            folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _synced_temp(self, path: Path, data: bytes, *, fsync: bool = True) -> Iterator[str]:
        """``data`` in a temporary file next to ``path`` (mode 0600), flushed to disk; removed
        afterwards unless it was renamed into place."""
        self._folders(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{writer_tag()}-")
        try:
            if self.private:
                os.fchmod(fd, PRIVATE_FILE)  # mkstemp's 0600 is still masked by the umask
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            yield tmp
        finally:
            Path(tmp).unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _abandoned(temporary: Path) -> bool:
    tag = temporary.name.removeprefix(TEMPORARY_PREFIX).rsplit("-", 1)[0]
    gone = tagged_writer_gone(tag)
    if gone is not None:
        return gone
    try:
        return time.time() - temporary.stat().st_mtime > FOREIGN_TEMPORARY_SECONDS
    except FileNotFoundError:
        return False


def private_folders(root: Path, folder: Path) -> None:
    """Create ``folder`` (``root`` or inside it) and any missing folder from ``root`` down, each
    0700 whatever the umask; folders that exist keep their modes."""
    if folder.is_dir():
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    relative = folder.relative_to(root)
    for step in [*reversed(relative.parents), relative]:
        path = root / step
        try:
            os.mkdir(path, PRIVATE_FOLDER)
        except FileExistsError:
            continue
        os.chmod(path, PRIVATE_FOLDER)  # mkdir's mode is masked by the umask


def keep_private(root: Path, folder: Path) -> None:
    """Give ``folder``, everything under it and the folders between it and ``root`` the private
    modes (0700, 0600): for what another library wrote there with the process umask.

    Only entries with group or other bits are changed; links are left alone."""
    step = folder
    while step != root and root in step.parents:
        _tighten(step, PRIVATE_FOLDER)
        step = step.parent
    for top, folders, files in os.walk(folder):
        for name in folders:
            _tighten(Path(top, name), PRIVATE_FOLDER)
        for name in files:
            _tighten(Path(top, name), PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = path.lstat()
    except FileNotFoundError:
        return  # removed meanwhile (vacuum, a temporary file renamed)
    if not stat.S_ISLNK(current.st_mode) and current.st_mode & 0o077:
        os.chmod(path, mode)


def _within(path: str, folder: str) -> bool:
    """Whether real path ``path`` is ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
