"""``dataset pull``: copy a published version (or one split / format of it) to a folder or
S3, every file checked against the version's ``checksums.sha256``, itself checked against
the SHA-256 the registry recorded at publication."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.datasets import layout, registry
from lakehouse.datasets.model import FORMATS
from lakehouse.errors import Refused
from lakehouse.storage import ObjectStore, open_location, open_zone


@dataclass(frozen=True)
class PullResult:
    version: registry.Version
    destination: str
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.version.ref, "project": self.version.project, "destination": self.destination,
                "files": self.files, "bytes": self.bytes}


def pull(
    settings: Settings, project: str, name: str, version: int | None, destination: str, *, user: str,
    split: str | None = None, fmt: str | None = None,
) -> PullResult:
    governance.require_role(settings, user, "labelers", "curators")
    found = registry.get_version(settings, project, name, version)
    if found.status != "published":
        why = f": {found.reason}" if found.reason else ""
        raise Refused(f"dataset {found.ref} is {found.status}{why}; nothing pulled")
    if fmt is not None and fmt not in FORMATS:
        raise Refused(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    if fmt is not None and fmt not in found.details.get("options", {}).get("formats", []):
        raise Refused(f"dataset {found.ref} was not built with --format {fmt}")
    if split is not None and split not in found.details.get("options", {}).get("splits", {}):
        raise Refused(f"dataset {found.ref} has no split {split}")
    source = open_zone(settings, "datasets")
    prefix = layout.version_prefix(project, name, found.version)
    listing = source.get(prefix + layout.CHECKSUMS)
    if hashlib.sha256(listing).hexdigest() != found.details.get("checksums_sha256"):
        raise Refused(f"dataset {found.ref}: {layout.CHECKSUMS} differs from the one recorded at publication")
    target = open_location(settings, destination)
    wanted = [(digest, path) for digest, path in _entries(listing) if _wanted(path, split, fmt)]
    total = 0
    for digest, path in wanted:
        data = source.get(prefix + path)
        if hashlib.sha256(data).hexdigest() != digest:
            raise Refused(f"dataset {found.ref}: {path} differs from its checksum; pull stopped")
        target.put(path, data)
        total += len(data)
    _finish(target, wanted, source.get(prefix + layout.VERSION_FILE))
    governance.append_audit(
        settings, user=user, action="dataset.pull",
        details={"project": project, "dataset": found.ref, "files": len(wanted), "bytes": total,
                 "split": split or "all", "format": fmt or "all"},
    )
    return PullResult(found, destination, len(wanted), total)


def _entries(listing: bytes) -> list[tuple[str, str]]:
    entries = []
    for line in listing.decode().splitlines():
        digest, _, path = line.partition("  ")
        if not path or ".." in path.split("/") or path.startswith("/"):
            raise Refused(f"{layout.CHECKSUMS} has a line that is not '<sha256>  <relative path>'")
        entries.append((digest, path))
    return entries


def _wanted(path: str, split: str | None, fmt: str | None) -> bool:
    head, _, rest = path.partition("/")
    if head not in FORMATS:
        return True  # manifests, cards
    if fmt is not None and head != fmt:
        return False
    return split is None or rest.startswith(f"{split}/")


def _finish(target: ObjectStore, wanted: list[tuple[str, str]], version_file: bytes) -> None:
    """The pulled subset's own checksums (``sha256sum -c`` runs in the destination) and version file."""
    target.put(layout.CHECKSUMS, "".join(f"{d}  {p}\n" for d, p in wanted).encode())
    target.put(layout.VERSION_FILE, version_file)
