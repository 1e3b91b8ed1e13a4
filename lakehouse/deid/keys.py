"""A de-identification key as de-identification receives it: hex text of at least 32 bytes.

De-identification never looks a key up itself (no settings, no storage): the export stage
finds a project's key (``lakehouse.export.keys``) and passes the bytes in ``DeidSettings``.
"""

from __future__ import annotations

from lakehouse.errors import DeidError

MIN_KEY_BYTES = 32


def parse_key(text: str, origin: str) -> bytes:
    """A key given as hex text (at least 32 bytes); the message names the origin, never the value."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise DeidError(f"key from {origin} is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise DeidError(f"key from {origin} is shorter than {MIN_KEY_BYTES} bytes")
    return key
