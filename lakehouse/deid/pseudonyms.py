"""Keyed pseudonyms (HMAC-SHA256 with the per-project key) and the per-patient date offset.

Everything is derived from the key and the input alone: no ``hash()``, no randomness, so the
same key and source give the same pseudonyms in every process. Each kind of value uses its
own domain prefix, so a UID and an ID with equal text do not get related pseudonyms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from functools import lru_cache

DICOM_ROOT = "1.2.840.10008."
MAX_OFFSET_DAYS = 3652  # offsets are 1..MAX_OFFSET_DAYS days into the past


def _digest(key: bytes, domain: str, value: str) -> bytes:
    return hmac.new(key, f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def is_well_known_uid(uid: str) -> bool:
    """UIDs defined by the standard (SOP classes, transfer syntaxes, ...) are never replaced."""
    return uid.startswith(DICOM_ROOT)


def pseudonymize_uid(uid: str, key: bytes) -> str:
    """``2.25.<decimal of the first 128 bits of HMAC-SHA256(key, uid)>``."""
    number = int.from_bytes(_digest(key, "uid", uid.strip().rstrip("\x00"))[:16], "big")
    return f"2.25.{number or 1}"


def pseudonymize_id(value: str, key: bytes, kind: str) -> str:
    """A stable opaque 16-character token (fits SH) for an identifier of ``kind``."""
    digest = _digest(key, f"id:{kind}", value.strip())
    return base64.b32encode(digest[:10]).decode("ascii")


def date_offset_days(pseudo_patient_id: str, key: bytes) -> int:
    """Days (negative, never 0) that every date of this pseudo patient moves by."""
    number = int.from_bytes(_digest(key, "date-offset", pseudo_patient_id)[:8], "big")
    return -(1 + number % MAX_OFFSET_DAYS)


@lru_cache(maxsize=4096)  # pure; strptime dominates, and a study repeats its few dates
def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (also a ``from-to`` range); None when it is not a valid date."""
    if "-" in value:
        parts = [shift_da(p, days) if p else "" for p in value.split("-", 1)]
        return None if None in parts else "-".join(p or "" for p in parts)
    text = value.strip()
    try:
        parsed = datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None
    return (parsed + timedelta(days=days)).strftime("%Y%m%d")


@lru_cache(maxsize=4096)
def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value (times and offsets are kept, the offset is whole days)."""
    text = value.strip()
    if "-" in text[1:] and not _has_utc_offset(text):
        parts = [shift_dt(p, days) if p else "" for p in text.split("-", 1)]
        return None if None in parts else "-".join(p or "" for p in parts)
    if len(text) < 4 or not text[:4].isdigit():
        return None
    head = text[:8]
    precision = len(head)
    padded = head + "0101"[max(0, precision - 4):] if precision < 8 else head
    try:
        parsed = datetime.strptime(padded[:8], "%Y%m%d").date()
    except ValueError:
        return None
    shifted = (parsed + timedelta(days=days)).strftime("%Y%m%d")
    if precision < 8:  # year or year-month precision: shift at that precision
        shifted = shifted[:precision]
    return shifted + text[8:]


def _has_utc_offset(text: str) -> bool:
    """A DT like 20200101120000-0500 ends with a UTC offset, not a range."""
    idx = text.rfind("-")
    tail = text[idx + 1 :]
    return idx >= 8 and len(tail) == 4 and tail.isdigit() and "-" not in text[:idx]
