"""Research project names: one type, one rule, checked where a name enters.

A project name becomes a folder in the research and datasets zones, the name of its key file
(``restricted/keys/<project>.key``) and part of its key's environment variable
(``LAKEHOUSE_DEID_KEY_LUNG_AI``), so it is limited to what all of them accept: 1-64 ASCII
letters, digits, ``-`` or ``_``, starting with a letter or digit (no ``.``: env var names
cannot hold it, and ``..`` would climb out of a folder).
"""

from __future__ import annotations

import re
from typing import Self

from lakehouse.errors import InvalidProjectName

__all__ = ["ProjectName"]

_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RULE = "1-64 letters, digits, '-' or '_', starting with a letter or digit"


class ProjectName(str):
    """A valid project name; ``ProjectName(text)`` raises InvalidProjectName for any other text."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        if not isinstance(value, str) or not _PATTERN.fullmatch(value):
            shown = repr(value[:64] + ("…" if len(value) > 64 else "")) if isinstance(value, str) else "a non-text value"
            raise InvalidProjectName(f"project name {shown} is not valid: use {RULE}")
        return super().__new__(cls, value)
