"""The UID grammar (PS3.5 §9.1), checked before a UID names a file or an object key.

A UID read from an object is data, not a name: ``../../x`` or ``/etc/x`` in a SOP Instance UID
must never become a path. The check is the grammar's shape — digits in dot-separated
components, at most 64 characters — and tolerates the leading zeros real archives hold
(``1.2.840.01``), which are harmless in a name.
"""

from __future__ import annotations

import re

__all__ = ["UID_MAX_LENGTH", "is_uid"]

UID_MAX_LENGTH = 64
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def is_uid(value: object) -> bool:
    """Whether ``value`` is a string of the UID grammar, safe as a file or key name."""
    return isinstance(value, str) and len(value) <= UID_MAX_LENGTH and _UID.fullmatch(value) is not None
