"""Storage tiers of archive objects: which can be read with a GET now, which need a restore
first (and whether one is under way or done), and which a read moves to a dearer tier.

What each S3 storage class does is data, kept with its prices in ``schemas/pricing/s3.json``
(``access``: ``readable`` or ``restore``; ``read_moves_to_frequent``). A local folder's
objects have no class: their tier is ``local``, always readable. A HEAD tells the rest:
``x-amz-restore`` says whether a restore of an archived object is under way
(``ongoing-request="true"``) or done (``ongoing-request="false"``, until its expiry date), and
``x-amz-archive-status`` that an Intelligent-Tiering object sits in one of its archive tiers.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, Literal

from lakehouse import resources
from lakehouse.storage.base import ObjectInfo

LOCAL = "local"
# An object's readability now; the others are the reasons a run waits for it. An
# Intelligent-Tiering object in an archive access tier is told apart: `export restore` asks
# only for Glacier Flexible Retrieval and Deep Archive objects (the catalog's class).
Readability = Literal["readable", "restore_not_requested", "restore_in_progress", "intelligent_tiering_archive"]
WAITING_REASONS: tuple[Readability, ...] = (
    "restore_not_requested", "restore_in_progress", "intelligent_tiering_archive",
)
_EXPIRY = re.compile(r'expiry-date="([^"]+)"')


@cache
def _classes() -> dict[str, Any]:
    classes: dict[str, Any] = resources.read_json("pricing", "s3.json")["classes"]
    return classes


def tier_of(storage_class: str | None, *, on_s3: bool = True) -> str:
    """The tier name of an object: its S3 class (S3 leaves out STANDARD at times), or ``local``."""
    if not on_s3:
        return LOCAL
    return storage_class or "STANDARD"


def needs_restore(tier: str) -> bool:
    """Whether objects of this tier can be read only from a restored copy (Glacier Flexible
    Retrieval, Deep Archive). An unknown class is taken as readable: its GET tells."""
    return bool(_classes().get(tier, {}).get("access") == "restore")


def archive_classes() -> tuple[str, ...]:
    """The storage classes whose objects need a restore before a GET."""
    return tuple(sorted(name for name in _classes() if needs_restore(name)))


def read_moves_to_frequent(tier: str) -> bool:
    """Whether a read moves the object to a dearer tier of the archive owner's (Intelligent-Tiering)."""
    return "read_moves_to_frequent" in _classes().get(tier, {})


def readability(info: ObjectInfo) -> Readability:
    """Whether the object HEAD ``info`` describes can be read with a GET now, and if not, why."""
    archived = needs_restore(tier_of(info.storage_class)) if info.storage_class else False
    if not archived and not info.archive_status:
        return "readable"
    restore = (info.restore or "").replace(" ", "")
    if 'ongoing-request="false"' in restore:
        return "readable"  # a restored copy, until its expiry date
    if 'ongoing-request="true"' in restore:
        return "restore_in_progress"
    return "restore_not_requested" if archived else "intelligent_tiering_archive"


def restored_until(info: ObjectInfo) -> datetime | None:
    """When the restored copy of an archived object goes (``x-amz-restore`` expiry-date)."""
    found = _EXPIRY.search(info.restore or "")
    return parsedate_to_datetime(found.group(1)) if found else None
