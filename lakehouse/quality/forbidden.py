"""Finding a run's source identifiers inside free text (header JSON, attribute text).

Exact equality is left to Great Expectations; this module answers "does this text
contain an identifier?" fast enough for thousands of identifiers over a whole batch.
Text is cut into tokens at JSON and DICOM delimiters (whitespace, quotes, backslash,
comma, colon, brackets, braces); an identifier that is itself one token is found by a
set lookup, so ``1.2.3`` is found in ``"Value":["1.2.3"]`` but not inside
``1.2.3.4`` (a different UID). Identifiers containing a delimiter are searched as
plain substrings. Each identifier is also searched in its JSON-escaped form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

_DELIMITERS = ' \t\r\n"\\,:{}[]'
_TOKEN = re.compile(r'[^\s"\\,:{}\[\]]+')


class ForbiddenMatcher:
    def __init__(self, values: Iterable[str]) -> None:
        self.tokens: set[str] = set()
        self.substrings: list[str] = []
        for value in normalize(values):
            for form in {value, json.dumps(value, ensure_ascii=False)[1:-1]}:
                if any(ch in _DELIMITERS for ch in form):
                    self.substrings.append(form)
                else:
                    self.tokens.add(form)
        self.substrings.sort()

    def found_in(self, text: str | None) -> bool:
        if not text:
            return False
        if self.tokens and not self.tokens.isdisjoint(_TOKEN.findall(text)):
            return True
        return any(s in text for s in self.substrings)

    def count_rows(self, texts: Iterable[str | None]) -> int:
        """How many of ``texts`` contain an identifier."""
        return sum(1 for text in texts if self.found_in(text))


def normalize(values: Iterable[str]) -> set[str]:
    """Identifiers as DICOM stores them, without padding; empty ones dropped (they
    identify nobody and would match every empty cell)."""
    return {v.strip(" \x00") for v in values if v is not None and v.strip(" \x00")}
