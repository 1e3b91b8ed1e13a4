"""Identifiers of the source object and the residual-PHI scan of the output.

The engine feeds ``Identifiers`` with every identifying value it removes or replaces (name
components, IDs, addresses, phone numbers, dates, UIDs). ``Identifiers.compile`` turns them
into a ``Scanner``, which both cleans text (the C action) and scans the finished output: every
text value at every depth is checked once.

Matching is one case-insensitive alternation of the identifiers between alphanumeric
boundaries. Compiling that per object cost more than reading and writing the object, and
the UIDs make every object's set unique, so the scan splits it without changing a result:
identifiers made only of digits and dots (UIDs, numeric IDs, dates), which case-folding
cannot touch, are looked up as substrings of digit/dot runs; identifiers made only of ASCII
letters and digits (serial numbers, IDs, most name parts) can only match a whole run of word
characters, so runs are case-folded and looked up in a set; the rest (whole names, names with
hyphens or spaces, date forms) are found by a case-folded substring search with the same
boundaries (a regex only for text whose case-folding changes its length).
The full alternation is compiled only when the C action has something to cut out.

What counts as a leak, with the vocabulary in mind (so ordinary words are not quarantined):
- A name component that is a vocabulary word (``schemas/deid/clean_vocabulary.json``, e.g. a
  patient named "Perfusion^MCA Stroke") counts only as part of the whole name.
- In coded values (CS, Code Value, Coding Scheme Designator and Version) every value is a
  defined term of its attribute, so no lone name component counts there ("TEXT" in Value Type
  for an observer named "Enter text", "TEST" as designator for a patient "Test^S R"); the
  whole name, IDs, UIDs and dates still do.
- The engine's own dummy values (``ANONYMIZED``, ``19000101`` ...) are never a hit, even when the
  source held the same value.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property

from pydicom.dataset import Dataset

from lakehouse.deid.clean_text import REDACTED_MEANING, vocabulary
from lakehouse.deid.identifying import parts
from lakehouse.deid.record import RECORDED_TAG_PATHS
from lakehouse.dicom.elements import tag_text, text_values, text_values_by_tag

# Values we write ourselves; a source whose name is "Anonymized" must not flag our dummies.
STOPWORDS = frozenset({"ANONYMIZED", "ANONYMOUS", "REMOVED", "UNKNOWN", "NONE", "NULL", "N/A", REDACTED_MEANING})
#: The dummy date the profile writes (D on DA, and DT with 000000): never an original date.
DUMMY_DATE = "19000101"
MIN_LENGTH = 3
# Tag paths of code entry values that are terms of a coding scheme (see the module docstring).
CODED_TAG_PATHS = ("(0008,0100)", "(0008,0102)", "(0008,0103)")
CODED_TAGS = frozenset(int(p[1:5] + p[6:10], 16) for p in CODED_TAG_PATHS)
RECORDED_TAGS = frozenset(int(p[1:5] + p[6:10], 16) for p in RECORDED_TAG_PATHS)
CODED_VRS = frozenset({"CS"})

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
# VRs whose values the scan reads as text; UN values are read as Latin-1 bytes.
TEXT_VALUE_VRS = SCANNED_VRS | DATE_VRS | {"UI", "UN"}
DATE_SPLIT = re.compile(r"[\\-]")
# What the identifier regex treats as a word character (IGNORECASE adds a few non-ASCII ones).
BOUNDARY = re.compile("[A-Za-z0-9]", re.IGNORECASE)
PLAIN_CHARS = frozenset("0123456789.")  # no case variants: IGNORECASE matches them exactly
ALNUM_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# BOUNDARY's characters: ASCII letters and digits plus the four non-ASCII letters that
# IGNORECASE matches to ASCII ones (Python's re documentation), folded to those.
WORD_RUN = re.compile("[A-Za-z0-9\u0130\u0131\u017f\u212a]+")
WORD_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
DIGIT_DOT_RUN = re.compile(r"[0-9.]+")
DOT = re.compile(r"\.")


@dataclass
class Identifiers:
    """What identified the source; only ever used in memory, never logged."""

    names: set[str] = field(default_factory=set)  # components that identify on their own
    common_names: set[str] = field(default_factory=set)  # components that are vocabulary words
    whole_names: set[str] = field(default_factory=set)  # the full name, in its written forms
    ids: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)  # YYYYMMDD
    uids: set[str] = field(default_factory=set)

    def add_name(self, value: str) -> None:
        words = vocabulary().words
        components = []
        for part in parts("name", value):
            text = part.strip()
            if len(text) >= MIN_LENGTH and text.upper() not in STOPWORDS:
                components.append(text)
                (self.common_names if text.casefold() in words else self.names).add(text)
        if len(components) > 1:  # a one-component name is its own whole name (kept above)
            rotated = components[1:] + components[:1]  # given names first
            self.whole_names.update({value.strip().rstrip("^="), " ".join(components), " ".join(rotated)})
        elif components and components[0] in self.common_names:
            self.whole_names.add(components[0])

    def add_id(self, value: str) -> None:
        self._add(self.ids, value)

    def add_address(self, value: str) -> None:
        for part in parts("address", value):
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
        """Names, IDs and replaced UIDs: what must never appear anywhere in a research table.

        Dates are left out on purpose: across a batch, one patient's shifted date can equal
        another patient's real date by chance. Each object's own original dates are checked
        by the residual scan (its Scanner), where a match means a real leak."""
        return frozenset(self.names | self.whole_names | self.ids | self.uids)

    def compile(self, dates_kept: bool, exclude_dates: set[str]) -> Scanner:
        dates = set() if dates_kept else self.dates - exclude_dates - {DUMMY_DATE}
        coded = self.whole_names | self.ids | self.uids
        for d in dates:
            y, m, dd = d[:4], d[4:6], d[6:8]
            coded |= {d, f"{y}-{m}-{dd}", f"{y}.{m}.{dd}", f"{m}/{dd}/{y}", f"{dd}.{m}.{y}"}
        literals = frozenset(coded | self.names)
        return Scanner(literals, frozenset(dates), frozenset(self.uids), frozenset(coded))


def _alternation(literals: frozenset[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex of the literals, longest first, between word boundaries."""
    if not literals:
        return None
    alternation = "|".join(re.escape(s) for s in sorted(literals, key=lambda s: (-len(s), s)))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.IGNORECASE)




@dataclass(frozen=True)
class Scanner:
    literals: frozenset[str]
    dates: frozenset[str]
    uids: frozenset[str]
    coded_literals: frozenset[str] | None = None  # for coded values: without lone name components

    @cached_property
    def coded(self) -> Scanner:
        """The scanner for coded values (see the module docstring)."""
        if self.coded_literals is None or self.coded_literals == self.literals:
            return self
        return Scanner(self.coded_literals, self.dates, self.uids)

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        """The full alternation: what ``clean`` cuts out and ``hit`` looks for, by definition.
        Not compiled on the hot path (see the module docstring)."""
        return _alternation(self.literals)

    @cached_property
    def _folded(self) -> frozenset[str]:
        """Literals neither digit/dot nor letter/digit only: whole names, hyphenated names, date forms."""
        return frozenset(s for s in self.literals if not (PLAIN_CHARS.issuperset(s) or ALNUM_CHARS.issuperset(s)))

    @cached_property
    def _folded_lower(self) -> tuple[str, ...]:
        return tuple(sorted({s.translate(WORD_FOLD).casefold() for s in self._folded}))

    def _next_folded(self, text: str, pos: int) -> tuple[int, int] | None:
        """What the alternation of ``_folded`` would match (leftmost, then longest), found with
        ``str.find`` on the case-folded text: compiling that regex per object cost more than the
        rest of the scan."""
        lowered = text.translate(WORD_FOLD).casefold()
        if len(lowered) != len(text):  # case-folding moved the offsets: ask the regex
            regex = _alternation(self._folded)
            found = regex.search(text, pos) if regex is not None else None
            return found.span() if found is not None else None
        best: tuple[int, int] | None = None
        for literal in self._folded_lower:
            start = lowered.find(literal, pos)
            while start != -1:
                end = start + len(literal)
                if not (start > 0 and BOUNDARY.match(text, start - 1)) and not BOUNDARY.match(text, end):
                    if best is None or (start, -end) < (best[0], -best[1]):
                        best = (start, end)
                    break
                start = lowered.find(literal, start + 1)
        return best

    @cached_property
    def _word_literals(self) -> frozenset[str]:
        """Letter-and-digit identifiers (digit-and-dot ones stay with ``_plain``)."""
        return frozenset(s for s in self.literals if ALNUM_CHARS.issuperset(s) and not PLAIN_CHARS.issuperset(s))

    @cached_property
    def _words(self) -> frozenset[str]:
        return frozenset(s.upper() for s in self._word_literals)

    @cached_property
    def _plain(self) -> frozenset[str]:
        return frozenset(s for s in self.literals if PLAIN_CHARS.issuperset(s))

    @cached_property
    def _plain_max(self) -> int:
        return max(map(len, self._plain), default=0)

    def clean(self, text: str) -> str:
        """The C action on free text: identifiers and identifier-like patterns cut out."""
        return PATTERNS.sub("", self._cut_literals(text)).strip()

    def hit(self, vr: str, text: str) -> bool:
        if vr == "UI":
            return any(u.strip("\x00 ") in self.uids for u in text.split("\\"))
        if vr in DATE_VRS:
            return any(v.strip()[:8] in self.dates for v in DATE_SPLIT.split(text) if v.strip())
        if self._next_literal(text, 0) is not None:
            return True
        return vr in FREE_TEXT_VRS and PATTERNS.search(text) is not None

    def _cut_literals(self, text: str) -> str:
        """``self.regex.sub("", text)``: leftmost matches, the longest at each position."""
        pieces, pos = [], 0
        while (found := self._next_literal(text, pos)) is not None:
            start, end = found
            pieces.append(text[pos:start])
            pos = end
        return "".join(pieces) + text[pos:] if pieces else text

    def _next_literal(self, text: str, pos: int) -> tuple[int, int] | None:
        """Span of the leftmost (then longest) literal match at or after ``pos``, or None."""
        spans = [
            self._next_folded(text, pos) if self._folded else None,
            self._next_plain(text, pos) if self._plain else None,
            self._next_word(text, pos) if self._words else None,
        ]
        return min((s for s in spans if s is not None), key=lambda s: (s[0], -s[1]), default=None)

    def _next_word(self, text: str, pos: int) -> tuple[int, int] | None:
        """The first whole run of word characters at or after ``pos`` that equals a
        letter-and-digit literal ignoring case: with the regex's boundaries, such a literal
        matches exactly a whole run."""
        words = self._words
        for run in WORD_RUN.finditer(text, pos):
            start = run.start()
            if start == pos and pos > 0 and BOUNDARY.match(text, pos - 1):
                continue  # the run began before ``pos``: not a whole run from here
            if run.group().translate(WORD_FOLD).upper() in words:
                return run.span()
        return None

    def _next_plain(self, text: str, pos: int) -> tuple[int, int] | None:
        """The leftmost-longest digit/dot literal at or after ``pos``, with the regex's
        boundaries: it starts at a run's start or after a dot, ends at a run's end or before
        a dot, and a run's outer neighbours must not be word characters."""
        plain, longest, end_of_text = self._plain, self._plain_max, len(text)
        for run in DIGIT_DOT_RUN.finditer(text):
            start, end = run.span()
            if end <= pos:
                continue
            dots = [m.start() for m in DOT.finditer(text, start, end)]
            starts = [start] if start == 0 or not BOUNDARY.match(text, start - 1) else []
            starts += [d + 1 for d in dots if d + 1 < end]
            ends = [d for d in dots if d > start]
            if end == end_of_text or not BOUNDARY.match(text, end):
                ends.append(end)
            for i in starts:
                if i < pos:
                    continue
                for j in reversed(ends[bisect_right(ends, i) : bisect_right(ends, i + longest)]):
                    if text[i:j] in plain:
                        return i, j
        return None

    def first_hit(self, ds: Dataset) -> str | None:
        """Tag path of the first value that still carries an identifier, or None.

        Depth first in the dataset's element order. Values still in raw form are decoded
        for the check only and stay raw, so the writer copies them byte for byte. Every value
        is checked, by a scanner narrowed to the literals that occur in the values at all
        (``_narrowed``), which gives each value the same answer as this scanner.
        """
        try:
            values = [
                (prefix, tag, vr, text) for prefix, tag, vr, text in text_values_by_tag(ds, TEXT_VALUE_VRS)
                # our own record ("DICOM PS3.15 ... Profile"), for a patient named "Dicom"
                if not (prefix.startswith(RECORDED_TAG_PATHS) if prefix else tag in RECORDED_TAGS)
            ]
        except Exception:  # noqa: BLE001 - a value that cannot be read: the exact walk, which
            return self._first_hit_in_order(ds)  # reports an earlier hit or raises the same way
        scanner = self._narrowed([text for _, _, vr, text in values if vr != "UI" and vr not in DATE_VRS])
        for prefix, tag, vr, text in values:
            if (scanner.coded if vr in CODED_VRS or tag in CODED_TAGS else scanner).hit(vr, text):
                return prefix + tag_text(tag)
        return None

    def _first_hit_in_order(self, ds: Dataset) -> str | None:
        for path, vr, text in text_values(ds, TEXT_VALUE_VRS):
            if path.startswith(RECORDED_TAG_PATHS):
                continue
            scanner = self.coded if vr in CODED_VRS or path.endswith(CODED_TAG_PATHS) else self
            if scanner.hit(vr, text):
                return path
        return None

    def _narrowed(self, texts: list[str]) -> Scanner:
        """This scanner without the literals that occur in none of ``texts``: for each of those
        texts, ``hit`` gives the same answer, with a few substring tests instead of one search
        per literal and text.

        A literal matches a text only where the text (case-folded the way its category is
        matched: ``_next_plain`` as is, ``_next_word`` upper-cased, ``_next_folded`` case-folded)
        contains it, and folding is character by character, so a literal absent from the
        joined, folded texts matches none of them. When case-folding changes the length of some
        text (``_next_folded`` then asks the regex), nothing is narrowed. Dates and UIDs are
        looked up whole (UI, DA, DT values) and stay as they are."""
        joined = "\n".join(texts)
        translated = joined.translate(WORD_FOLD)
        lowered = translated.casefold()
        if len(lowered) != len(joined):
            return self
        upper = translated.upper()
        kept = {s for s in self._plain if s in joined}
        kept.update(s for s in self._word_literals if s.upper() in upper)
        kept.update(s for s in self._folded if s.translate(WORD_FOLD).casefold() in lowered)
        if len(kept) == len(self.literals):
            return self
        coded = None if self.coded_literals is None else self.coded_literals & kept
        return Scanner(frozenset(kept), self.dates, self.uids, coded)
