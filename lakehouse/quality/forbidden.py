"""Finding a run's source identifiers inside free text (header JSON, attribute text).

Exact equality is left to Great Expectations; this module answers "does this text
contain an identifier?" fast enough for thousands of identifiers over a whole batch.
Text is cut into tokens at JSON and DICOM delimiters (whitespace, quotes, backslash,
comma, colon, brackets, braces); an identifier that is itself one token is found by a
set lookup, so ``1.2.3`` is found in ``"Value":["1.2.3"]`` but not inside
``1.2.3.4`` (a different UID). Identifiers containing a delimiter are searched as
plain substrings, all at once: one alternation of literals run by Arrow's RE2, which
matches it in one linear pass (a Python loop over identifiers × texts cost seconds per
batch). Each identifier is also searched in its JSON-escaped form. A column is searched
once per distinct value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Where text is cut into tokens: whitespace (every character ``str.isspace`` calls one, all
# below U+3001) and JSON/DICOM punctuation. The same characters decide which identifiers are
# tokens, so an identifier is never a token that a cut text cannot contain.
_DELIMITERS = frozenset(c for c in map(chr, range(0x3001)) if c.isspace()) | frozenset('"\\,:{}[]')
# The same characters as one RE2 class (Arrow's regex engine): ``\x{...}`` escapes each.
_DELIMITER_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(_DELIMITERS)) + "]+"


class ForbiddenMatcher:
    def __init__(self, values: Iterable[str]) -> None:
        self.tokens: set[str] = set()
        substrings: set[str] = set()
        for value in normalize(values):
            for form in {value, json.dumps(value, ensure_ascii=False)[1:-1]}:
                if any(ch in _DELIMITERS for ch in form):
                    substrings.add(form)
                else:
                    self.tokens.add(form)
        self.substrings = sorted(substrings)
        self._token_values = pa.array(sorted(self.tokens), type=pa.string())
        # Longest first, so an alternation never stops at a shorter identifier's prefix.
        self._pattern = "|".join(re.escape(s) for s in sorted(substrings, key=len, reverse=True))

    def found_in(self, text: str | None) -> bool:
        if not text:
            return False
        return bool(self.hits(pa.array([text], type=pa.string()))[0].as_py())

    def count_rows(self, texts: Iterable[str | None] | pa.Array | pa.ChunkedArray) -> int:
        """How many of ``texts`` contain an identifier."""
        column = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(list(texts), type=pa.string())
        distinct = pc.unique(column)
        found = pc.filter(distinct, self.hits(distinct))
        if not len(found):
            return 0
        return int(pc.sum(pc.is_in(column, value_set=found)).as_py() or 0)

    def hits(self, texts: pa.Array) -> pa.BooleanArray:
        """Per text: does it contain an identifier (null and empty texts: no)."""
        by_token = self._token_hits(texts)
        if not self._pattern:
            return by_token
        by_substring = pc.fill_null(pc.match_substring_regex(texts, self._pattern), False)
        return pc.or_(by_token, by_substring)

    def _token_hits(self, texts: pa.Array) -> pa.BooleanArray:
        """Per text: is one of its tokens an identifier (cut and looked up in Arrow, not Python)."""
        if not self.tokens:
            return pa.array(np.zeros(len(texts), dtype=bool))
        pieces = pc.split_pattern_regex(texts, pattern=_DELIMITER_RUN)
        found = pc.is_in(pc.list_flatten(pieces), value_set=self._token_values)
        rows = pc.filter(pc.list_parent_indices(pieces), found)
        return pc.is_in(pa.array(np.arange(len(texts), dtype=np.int64)), value_set=pc.cast(rows, pa.int64()))


def normalize(values: Iterable[str]) -> set[str]:
    """Identifiers as DICOM stores them, without padding; empty ones dropped (they
    identify nobody and would match every empty cell)."""
    return {v.strip(" \x00") for v in values if v is not None and v.strip(" \x00")}
