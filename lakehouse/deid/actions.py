"""The profile's actions on the header, applied in place at every depth.

One walk over the dataset: each element's action is a dict lookup in the resolved profile.
Elements the profile keeps are left as read (raw bytes, no decoding, see
``lakehouse.dicom.elements``), so pixel data and untouched values are written back byte for
byte. Every identifying value removed or replaced is remembered (``Identifiers``): every
Person Name, UID and (unless full dates are kept) date, and the values of the attributes
``schemas/deid/identifying_attributes.json`` lists for the ``header`` check.

Where the standard leaves the mechanics open:
- Attributes Table E.1-1 does not list follow ``schemas/deid/unlisted_attributes.json``
  (``lakehouse.deid.unlisted``): kept by VR or allowlist, else removed, emptied or cleaned;
  a conditional attribute goes when the one it depends on is gone or empty.
- A sequence whose action is D, C, K or U* is kept and its items are cleaned recursively
  (which puts dummies in their identifying attributes); Z empties it; X removes it.
- SR content items (items with Value Type): without Clean Structured Content every TEXT value
  becomes a dummy; the other value types are governed by their attribute rows (Person Name D,
  Date D, UID U, ...). With the option, Table E.3.4-1 decides per concept name (X removes the
  content item), and TEXT items it does not list are cleaned (falling back to D, so the tree
  keeps its structure).
- C on free text (LO, LT, SH, ST, UT, UC, CS) is fail closed: the source's identifiers and
  identifier-like patterns are cut out, then only allowlisted vocabulary survives
  (``clean_text``); when nothing survives, the attribute gets its fallback, the Basic Profile
  action (``ResolvedProfile.fallback``). C never keeps a Person Name, AE title, URI or binary
  value (OB, OW, UN, ...): they get the fallback at once. C on DA/DT shifts by the pseudo
  patient's offset; TM and numbers are kept (the offset is whole days, so every DA/DT + TM
  pair stays consistent).
- Code Meaning (0008,0104), which the table does not list, is vocabulary only for the standard
  schemes of ``schemas/deid/coding_schemes.json``. A private or local scheme's meaning is free
  text: it becomes ``REDACTED``, or with Clean Descriptors / Clean Structured Content it is
  cleaned like any C text (``REDACTED`` when nothing survives). The Code Value stays.
- Private attributes are removed (the ``PRIVATE`` row); under Retain Safe Private,
  ``lakehouse.deid.safe_private`` decides which stay and with which action.
- Overlays: when Overlay Data is removed, the whole 60xx group goes (a plane without data is
  invalid). Clean Graphics (C) cannot show that an overlay bitmap holds no burned-in text, so
  the plane goes too; for the same reason curves (50xx, retired) go under C.
- Retain Modified Dates shifts every DA/DT, also ones the table does not list.
- Ages (AS) that are kept (Retain Patient Characteristics, or an AS the table does not list)
  follow HIPAA Safe Harbor whatever the options: above 89 years they become ``090Y`` ("90 or
  older"), whatever unit they were written in; a value that is not a readable age is emptied,
  since it may hide one. (Patient's Birth Date is Z under every option, so it never survives.)
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from lakehouse.deid.clean_text import REDACTED_MEANING, clean_text, is_standard_scheme
from lakehouse.deid.identifying import checked_by
from lakehouse.deid.options import option_columns
from lakehouse.deid.profile import ResolvedProfile
from lakehouse.deid.pseudonyms import (
    is_well_known_uid,
    pseudonymize_id,
    pseudonymize_uid,
    shift_da,
    shift_dt,
)
from lakehouse.deid.residual import DUMMY_DATE, Identifiers, Scanner
from lakehouse.deid.safe_private import SafePrivate
from lakehouse.deid.unlisted import unlisted_actions
from lakehouse.dicom.elements import (
    STRING_VRS,
    Element,
    element_vr,
    raw_strings,
    replaced_value,
    sequence,
    set_value,
    values_of,
)

DUMMIES: dict[str, Any] = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED",
    "ST": "ANONYMIZED", "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED",
    "AE": "ANONYMIZED", "UR": "urn:anonymized", "DA": DUMMY_DATE, "DT": DUMMY_DATE + "000000",
    "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0", "US": 0, "SS": 0, "UL": 0, "SL": 0,
    "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
}
# Identifiers replaced by keyed tokens (under Z or D) so records still group: tag → token kind.
# Identifiers replaced by a keyed token rather than emptied: objects that shared one still do,
# and a Type 1C Requested Procedure ID (Request Attributes Macro, PS3.3 Table 10-9) keeps a value.
TOKEN_KINDS = {
    0x00100020: "patient", 0x00080050: "accession", 0x00200010: "study-id", 0x00401001: "requested-procedure",
}
CONTENT_VALUE_TAGS = {
    "TEXT": BaseTag(0x0040A160), "PNAME": BaseTag(0x0040A123), "DATE": BaseTag(0x0040A121),
    "TIME": BaseTag(0x0040A122), "DATETIME": BaseTag(0x0040A120), "UIDREF": BaseTag(0x0040A124),
}
VALUE_TYPE = BaseTag(0x0040A040)
CONCEPT_NAME = BaseTag(0x0040A043)
CODE_MEANING = BaseTag(0x00080104)
CODING_SCHEME_DESIGNATOR = BaseTag(0x00080102)
# VRs C cleans word by word; the others it keeps (TM, numbers) or replaces by the fallback.
CLEANED_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "CS"})
KEPT_UNDER_C_VRS = frozenset({"TM", "IS", "DS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})
REDACT = "redact"  # the fallback of a local-scheme Code Meaning: REDACTED_MEANING
CLEANING_OPTIONS = frozenset({"clean-descriptors", "clean-structured-content"})


def date_mode(options: frozenset[str]) -> str | None:
    if "retain-full-dates" in options:
        return "full"
    if "retain-modified-dates" in options:
        return "modified"
    return None



_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$")
_DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25}
SAFE_HARBOR_MAX_YEARS = 89


def age_in_years(text: str) -> float | None:
    """The years an AS value stands for (``047Y``, ``006M``, ``012W``, ``030D``); None if unreadable."""
    match = _AGE.match(text)
    return int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)] / 365.25 if match else None


def safe_harbor_age(text: str) -> str:
    """An AS value as it may leave: ``090Y`` above 89 years (HIPAA Safe Harbor's "90 or older"),
    unchanged otherwise; "" when it is not a readable age (it might hide one)."""
    if not text.strip():
        return text
    years = age_in_years(text)
    if years is None:
        return ""
    return "090Y" if years > SAFE_HARBOR_MAX_YEARS else text


class ProfileActions:
    """Applies the resolved profile to a dataset; collects the source's identifiers."""

    def __init__(self, profile: ResolvedProfile, key: bytes, options: frozenset[str], date_offset: int):
        self.profile = profile
        self.key = key
        self.date_mode = date_mode(options)
        self.date_offset = date_offset
        self.clean_sr = "clean-structured-content" in options
        self.drop_overlays = profile.overlay_data in ("X", "C")
        self.curve_action = "X" if profile.curve == "C" else profile.curve
        self.clean_code_meanings = bool(CLEANING_OPTIONS & options)
        self.counts: Counter[str] = Counter()
        self.uid_map: dict[str, str] = {}
        self.identifiers = Identifiers()
        self.identifying = checked_by("header")  # tag → kind: id, address, ...
        self.unlisted = unlisted_actions(option_columns(options), self.date_mode is None)
        self._shifted: set[str] = set()
        self._deferred: list[tuple[Dataset, int, str, str]] = []  # ds, tag, VR, fallback
        self.retain_safe_private = "retain-safe-private" in options
        self.safe_private: SafePrivate | None = None  # per object, made by walk()

    def walk(self, ds: Dataset) -> None:
        if self.retain_safe_private:  # read (0008,0300) before the walk acts on it
            self.safe_private = SafePrivate(ds)
        self._dataset(ds, skip=None)

    def finish(self) -> Scanner:
        """Clean the deferred free text with the complete identifier set; return the scanner."""
        scanner = self.identifiers.compile(self.date_mode == "full", self._shifted)
        for ds, tag, vr, fallback in self._deferred:
            # An empty raw value is converted all the same: that is how it is written.
            texts = raw_strings(ds, ds.get_item(tag, keep_deferred=True)) or self._texts(ds, tag)
            if not texts:
                continue
            cleaned = [c for text in texts if (c := clean_text(scanner.clean(text)))]
            if cleaned:
                set_value(ds, tag, vr, cleaned if len(cleaned) > 1 else cleaned[0])
            else:
                self._fall_back(ds, tag, vr, fallback)
        return scanner

    @staticmethod
    def _texts(ds: Dataset, tag: int) -> list[str]:
        """The element's values as text, converting it (``ds[tag]``); [] when empty."""
        value = ds[tag].value
        return [] if value is None or value == "" else [str(v) for v in values_of(value)]

    # -- traversal ---------------------------------------------------------------------------

    def _dataset(self, ds: Dataset, skip: int | None) -> None:
        # The dataset's own tag objects, with each element as stored (raw or converted).
        for tag, stored in list(ds.items()):
            if skip is None or tag != skip:
                self._element(ds, tag, stored)
        if CODE_MEANING in ds:
            self._code_meaning(ds)
        for orphan in self.unlisted.orphans(ds):
            self.counts["X"] += 1
            del ds[orphan]

    def _element(self, ds: Dataset, tag: BaseTag, stored: Element) -> None:
        group, number = tag >> 16, tag & 0xFFFF
        if not group & 1 and (number == 0 or group == 0x0002):  # group lengths and stray meta:
            del ds[tag]  # rebuilt or dropped
            return
        vr = stored.VR
        if not vr or vr == "UN" or (stored.is_raw and stored.value is None):
            vr = element_vr(ds, tag, stored)  # implicit VR, UN or a deferred read: the exact way
        else:
            vr = str(vr)
        if group & 1:
            if self.safe_private is not None:  # Retain Safe Private: lakehouse.deid.safe_private
                private_action, vr = self.safe_private.action(ds, tag, vr)
                self._apply(ds, tag, private_action, vr)
            else:
                self._apply(ds, tag, self.profile.private, vr)
            return
        if 0x5000 <= group <= 0x501E:
            action: str | None = self.curve_action
        elif 0x6000 <= group <= 0x601E:
            action = self._overlay_action(number, vr)
        else:
            action = self.profile.actions.get(int(tag))
            if action is None:  # not in Table E.1-1: the unlisted-attribute policy decides
                unlisted, fallback = self.unlisted.action(int(tag), vr)
                if unlisted is not None:
                    self._apply(ds, tag, unlisted, vr, fallback=fallback)
                    return
        if action is None:
            self._keep(ds, tag, vr)
        else:
            self._apply(ds, tag, action, vr)

    def _overlay_action(self, elem: int, vr: str) -> str | None:
        if self.drop_overlays:
            return "X"
        if elem == 0x3000:
            return self.profile.overlay_data
        if elem == 0x4000:
            return self.profile.overlay_comments
        return "C" if vr in ("LO", "LT", "SH", "ST", "UT", "CS") else None

    def _sequence(self, ds: Dataset, tag: int) -> None:
        elem = sequence(ds, tag)
        items = elem.value
        kept = [item for item in items if self._item(item)]
        if len(kept) != len(items):
            elem.value = kept

    def _item(self, item: Dataset) -> bool:
        """Clean one sequence item in place; False when it must be removed (SR content X)."""
        if VALUE_TYPE not in item:
            self._dataset(item, skip=None)
            return True
        value_type = str(item[VALUE_TYPE].value or "")
        value_tag = CONTENT_VALUE_TAGS.get(value_type)
        action = self._content_action(item, value_type)
        if action == "X":
            self.counts["X"] += 1
            return False
        if action is None or value_tag is None or value_tag not in item:
            self._dataset(item, skip=None)
            return True
        if action != "K":
            self._apply(item, value_tag, action, element_vr(item, value_tag), fallback="D")
        else:
            self.counts["K"] += 1
        self._dataset(item, skip=value_tag)
        return True

    def _content_action(self, item: Dataset, value_type: str) -> str | None:
        if not self.clean_sr:
            return "D" if value_type == "TEXT" else None
        concept = item.get(CONCEPT_NAME)
        action = None
        if concept is not None and concept.value:
            code = concept.value[0]
            action = self.profile.content.get(
                (str(code.get("CodeValue", "")), str(code.get("CodingSchemeDesignator", "")))
            )
        return action if action is not None else ("C" if value_type == "TEXT" else None)

    # -- actions -------------------------------------------------------------------------------

    def _keep(self, ds: Dataset, tag: int, vr: str) -> None:
        """Kept, but sequences are recursed and dates/ages follow the options."""
        if vr == "SQ":
            self._sequence(ds, tag)
        elif vr in ("DA", "DT") and self.date_mode == "modified":
            self._shift(ds, tag, vr)
        elif vr == "AS":
            self._cap_age(ds, tag)

    def _apply(self, ds: Dataset, tag: int, action: str, vr: str, fallback: str | None = None) -> None:
        self.counts[action] += 1
        if vr == "SQ":
            if action == "X":
                del ds[tag]
            elif action == "Z":
                ds[tag].value = []
            else:
                self._sequence(ds, tag)
            return
        if action == "K":
            if vr == "AS":
                self._cap_age(ds, tag)
            return
        if action == "U" or (vr == "UI" and action in ("D", "C")):
            self._uid(ds, tag, vr)
            return
        if action == "C":
            self._clean(ds, tag, vr, fallback or self.profile.fallback.get(tag, "X"))
            return
        self._harvest(ds, tag, vr)
        if action == "X":
            del ds[tag]
            return
        if tag in TOKEN_KINDS and (elem := ds[tag]).value:
            elem.value = pseudonymize_id(str(elem.value), self.key, TOKEN_KINDS[tag])
        elif action == "Z":
            set_value(ds, tag, vr, "" if vr in STRING_VRS else None)
        else:  # D
            set_value(ds, tag, vr, DUMMIES.get(vr, b"\x00\x00"))

    def _uid(self, ds: Dataset, tag: int, vr: str) -> None:
        if vr != "UI":
            self._harvest(ds, tag, vr)
            set_value(ds, tag, vr, DUMMIES.get(vr, b"\x00\x00"))
            return
        value = replaced_value(ds, tag, vr)
        if not value:
            return
        values = values_of(value)
        set_value(ds, tag, vr, [self._map_uid(str(v)) for v in values] if len(values) > 1
                   else self._map_uid(str(values[0])))

    def _map_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\x00")
        if not uid or is_well_known_uid(uid):
            return uid
        mapped = self.uid_map.get(uid)
        if mapped is None:
            mapped = self.uid_map[uid] = pseudonymize_uid(uid, self.key)
            self.identifiers.uids.add(uid)
        return mapped

    def _clean(self, ds: Dataset, tag: int, vr: str, fallback: str) -> None:
        if vr in ("DA", "DT"):
            if self.date_mode == "modified":
                self._shift(ds, tag, vr)
            elif self.date_mode is None:
                self._harvest(ds, tag, vr)
                set_value(ds, tag, vr, DUMMIES[vr])
        elif vr == "AS":
            self._cap_age(ds, tag)
        elif vr in CLEANED_TEXT_VRS:
            self._deferred.append((ds, tag, vr, fallback))
        elif vr not in KEPT_UNDER_C_VRS:  # PN, AE, UR, binary: nothing provably safe to keep
            self._harvest(ds, tag, vr)
            self._fall_back(ds, tag, vr, fallback)

    def _fall_back(self, ds: Dataset, tag: int, vr: str, action: str) -> None:
        """What C does when no part of the value is known to be safe."""
        self.counts["clean_fallback"] += 1
        if action == REDACT:
            set_value(ds, tag, vr, REDACTED_MEANING)
        elif action == "X":
            del ds[tag]
        elif action == "Z":
            set_value(ds, tag, vr, "" if vr in STRING_VRS else None)
        else:
            set_value(ds, tag, vr, DUMMIES.get(vr, b"\x00\x00"))

    def _code_meaning(self, item: Dataset) -> None:
        """A code item's meaning: kept for standard schemes, else redacted or cleaned."""
        scheme = item.get(CODING_SCHEME_DESIGNATOR)
        if scheme is not None and scheme.value and is_standard_scheme(str(scheme.value)):
            return
        if self.clean_code_meanings:
            self._deferred.append((item, CODE_MEANING, "LO", REDACT))
        else:
            self.counts["code_meaning_redacted"] += 1
            set_value(item, CODE_MEANING, "LO", REDACTED_MEANING)

    def _shift(self, ds: Dataset, tag: int, vr: str) -> None:
        value = replaced_value(ds, tag, vr)
        if not value:
            return
        values = values_of(value)
        shift = shift_da if vr == "DA" else shift_dt
        out = []
        for v in values:
            text = str(v)
            self.identifiers.add_date(text)
            moved = shift(text, self.date_offset)
            out.append(moved if moved is not None else DUMMIES[vr])
            if moved is not None:
                self._shifted.update(part[:8] for part in moved.split("-") if len(part) >= 8)
        set_value(ds, tag, vr, out if len(out) > 1 else out[0])
        self.counts["shifted"] += 1

    def _cap_age(self, ds: Dataset, tag: int) -> None:
        text = str(ds[tag].value or "")
        kept = safe_harbor_age(text)
        if kept != text:
            ds[tag].value = kept
            self.counts["age_capped" if kept else "age_unreadable"] += 1

    def _harvest(self, ds: Dataset, tag: int, vr: str) -> None:
        """Remember the identifying value about to be removed or replaced (for clean and scan)."""
        if vr not in STRING_VRS or not self._harvests(tag, vr):
            return  # nothing to remember: do not decode a value that is about to go
        texts = raw_strings(ds, ds.get_item(tag, keep_deferred=True))  # the element goes: no need to convert it
        ids, kind = self.identifiers, self.identifying.get(tag)
        for text in self._texts(ds, tag) if texts is None else texts:
            if vr == "PN" or kind == "name":
                ids.add_name(text)
            elif kind in ("id", "site"):
                ids.add_id(text)
            elif kind == "address":
                ids.add_address(text)
            elif vr in ("DA", "DT") and self.date_mode != "full":
                ids.add_date(text)
            elif vr == "UI" and not is_well_known_uid(text):
                ids.uids.add(text.strip().rstrip("\x00"))

    def _harvests(self, tag: int, vr: str) -> bool:
        """Whether ``_harvest`` keeps anything of this attribute's values."""
        return (vr in ("PN", "UI") or tag in self.identifying
                or (vr in ("DA", "DT") and self.date_mode != "full"))
