"""Identifiers of the source object and the residual-PHI scan of the output.

The engine feeds ``Identifiers`` with every identifying value it removes or replaces (name
components, IDs, addresses, phone numbers, dates, UIDs). ``Identifiers.compile`` turns them
into one case-insensitive regex plus set lookups, which both clean text (the C action) and scan
the finished output: every text value at every depth is checked once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

# Values we write ourselves; a source whose name is "Anonymized" must not flag our dummies.
STOPWORDS = frozenset({"ANONYMIZED", "ANONYMOUS", "REMOVED", "UNKNOWN", "NONE", "NULL", "N/A"})
MIN_LENGTH = 3

NAME_SPLIT = re.compile(r"[\^=\s,]+")
ADDRESS_SPLIT = re.compile(r"[\^,;\r\n]+")
# Identifier-like patterns, looked for in free text only.
PATTERNS = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+"  # e-mail
    r"|(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"  # US SSN
    r"|(?<![\d.])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\d.])"  # NANP phone
    r"|\+\d{1,3}[ -]\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}(?!\d)"  # international phone
)
FREE_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"})
SCANNED_VRS = FREE_TEXT_VRS | {"AE", "CS", "UR"}
DATE_VRS = frozenset({"DA", "DT"})


@dataclass
class Identifiers:
    """What identified the source; only ever used in memory, never logged."""

    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)  # YYYYMMDD
    uids: set[str] = field(default_factory=set)

    def add_name(self, value: str) -> None:
        for part in NAME_SPLIT.split(value):
            self._add(self.names, part)

    def add_id(self, value: str) -> None:
        self._add(self.ids, value)

    def add_address(self, value: str) -> None:
        for part in ADDRESS_SPLIT.split(value):
            self._add(self.ids, part)

    def add_date(self, value: str) -> None:
        text = value.strip()
        for part in text.split("-") if len(text) > 8 and not text[:14].isdigit() else [text]:
            if len(part) >= 8 and part[:8].isdigit():
                self.dates.add(part[:8])

    @staticmethod
    def _add(target: set[str], value: str) -> None:
        text = value.strip()
        if len(text) >= MIN_LENGTH and text.upper() not in STOPWORDS:
            target.add(text)

    def strings(self) -> frozenset[str]:
        return frozenset(self.names | self.ids | self.dates | self.uids)

    def compile(self, dates_kept: bool, exclude_dates: set[str]) -> Scanner:
        dates = set() if dates_kept else self.dates - exclude_dates
        literals = set(self.names) | set(self.ids) | set(self.uids)
        for d in dates:
            y, m, dd = d[:4], d[4:6], d[6:8]
            literals |= {d, f"{y}-{m}-{dd}", f"{y}.{m}.{dd}", f"{m}/{dd}/{y}", f"{dd}.{m}.{y}"}
        regex = None
        if literals:
            alternation = "|".join(re.escape(s) for s in sorted(literals, key=lambda s: (-len(s), s)))
            regex = re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.IGNORECASE)
        return Scanner(regex, frozenset(dates), frozenset(self.uids))


@dataclass(frozen=True)
class Scanner:
    regex: re.Pattern[str] | None
    dates: frozenset[str]
    uids: frozenset[str]

    def clean(self, text: str) -> str:
        """The C action on free text: identifiers and identifier-like patterns cut out."""
        if self.regex is not None:
            text = self.regex.sub("", text)
        return PATTERNS.sub("", text).strip()

    def hit(self, vr: str, text: str) -> bool:
        if vr == "UI":
            return any(u.strip("\x00 ") in self.uids for u in text.split("\\"))
        if vr in DATE_VRS:
            return any(v.strip()[:8] in self.dates for v in re.split(r"[\\-]", text) if v.strip())
        if self.regex is not None and self.regex.search(text):
            return True
        return vr in FREE_TEXT_VRS and PATTERNS.search(text) is not None

    def first_hit(self, ds: Dataset) -> str | None:
        """Tag path of the first value that still carries an identifier, or None."""
        for path, vr, text in _text_values(ds, ""):
            if self.hit(vr, text):
                return path
        return None


def element_vr(ds: Dataset, tag: int) -> str:
    raw = ds.get_item(tag)
    vr = raw.VR if raw is not None else None
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _text_values(ds: Dataset, prefix: str) -> Iterator[tuple[str, str, str]]:
    for tag in list(ds.keys()):
        vr = element_vr(ds, tag)
        path = f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        if vr == "SQ":
            for i, item in enumerate(ds[tag].value or []):
                yield from _text_values(item, f"{path}[{i}].")
        elif vr in SCANNED_VRS or vr in DATE_VRS or vr == "UI":
            value = ds[tag].value
            if value is None or value == "":
                continue
            if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            yield path, vr, text
        elif vr == "UN":
            value = ds.get_item(tag).value
            if isinstance(value, bytes) and value:
                yield path, "UN", value.decode("latin-1")
