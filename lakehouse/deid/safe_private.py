"""The Retain Safe Private Option (PS3.15 E.3.10): which private attributes stay.

A private attribute is kept when it is known to be safe from identity leakage, which E.3.10
lets a de-identifier determine by (1) its block's Block Identifying Information Status
(0008,0303) SAFE, or its element listed in Nonidentifying Private Elements (0008,0304) of a
MIXED block, both in Private Data Element Characteristics Sequence (0008,0300) (PS3.3
C.12.1.1.7), or (2) its presence in Table E.3.10-1 (``schemas/deid/ps315_e3101_safe_private.json``),
matched by group, Private Creator and element number within the block, and VR. The Private
Creator elements the kept attributes need are kept; every other private attribute is removed
(E.3.10 allows removal also where Deidentification Action (0008,0307) recommends another
action).

What a kept attribute still goes through (fail closed where the table cannot vouch):
- UIDs are replaced like every other UID (U), so references stay consistent;
- dates follow the date options (C), person names are never kept (X);
- a kept sequence's items are walked with the same rules (their own Private Creators);
- a Table E.3.10-1 row matches only when the element's VR is the row's VR (or unknown to the
  reader: UN, as implicit VR files store private elements); a row without a VR (five in the
  table) matches numeric VRs only;
- binary values kept (OB, OW, UN: Note 2 of E.3.10 calls bulk OB "particularly unsafe") are
  checked for the source's identifiers like text (``binary_values``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from lakehouse import resources
from lakehouse.dicom.elements import element_vr, value_text, values_of

TABLE_FILE = "ps315_e3101_safe_private.json"
CHARACTERISTICS = 0x00080300  # Private Data Element Characteristics Sequence
GROUP_REFERENCE, CREATOR_REFERENCE = 0x00080301, 0x00080302
BLOCK_STATUS, NONIDENTIFYING = 0x00080303, 0x00080304
NUMERIC_VRS = frozenset({"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"})
BINARY_VRS = frozenset({"OB", "OW", "UN"})
_ELEMENT = re.compile(r"\(([0-9A-F]{4}),XX([0-9A-F]{2})\)")

Block = tuple[int, str]  # (group, Private Creator)
ALL: frozenset[int] = frozenset(range(0x100))  # a SAFE block: every element


@dataclass(frozen=True)
class SafeTable:
    """Table E.3.10-1: (group, Private Creator, element within the block) → VR ("" = none given)."""

    rows: dict[tuple[int, str, int], str]


@lru_cache(maxsize=1)
def safe_table() -> SafeTable:
    rows: dict[tuple[int, str, int], str] = {}
    for row in resources.read_json("deid", TABLE_FILE)["rows"]:
        match = _ELEMENT.fullmatch(row["element"].upper())
        if match is None:
            raise ValueError(f"{TABLE_FILE}: element {row['element']!r} is not (gggg,xxee)")
        rows[(int(match.group(1), 16), row["private_creator"], int(match.group(2), 16))] = row["vr"]
    return SafeTable(rows)


class SafePrivate:
    """Decides, per private element of one object, what the profile does with it."""

    def __init__(self, root: Dataset) -> None:
        self.table = safe_table()
        self.declared = _declared_blocks(root)
        self.binary: list[tuple[Dataset, int]] = []  # kept binary values, checked after the walk
        self._plans: dict[int, tuple[Dataset, dict[int, str]]] = {}

    def action(self, ds: Dataset, tag: int, vr: str) -> tuple[str, str]:
        """(action, VR) for a private element of ``ds``: K, U, C or X."""
        plan = self._plans.get(id(ds))
        if plan is None:
            plan = self._plans[id(ds)] = (ds, self._plan(ds))  # ds held: its id stays unique
        kept_vr = plan[1].get(tag)
        if kept_vr is None:
            return "X", vr
        if kept_vr == "UI" and vr != "UI":  # a table UID read without its VR: decoded as one
            raw = ds[tag].value
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw or "")
            ds[tag] = DataElement(tag, "UI", text.strip(" \x00"))
            vr = "UI"
        if vr in BINARY_VRS:
            self.binary.append((ds, tag))
        return _kept_action(vr), vr

    def binary_values(self) -> Iterator[tuple[int, str]]:
        """(tag, value as Latin-1 text) of every kept binary value still in the object."""
        for ds, tag in self.binary:
            elem = ds.get(tag)
            if elem is not None:
                for value in values_of(elem.value):
                    if isinstance(value, bytes) and value:
                        yield tag, value.decode("latin-1")

    def _plan(self, ds: Dataset) -> dict[int, str]:
        """Tag → VR of the private elements of ``ds`` that stay, Private Creators included."""
        creators: dict[tuple[int, int], str] = {}
        private: list[tuple[int, str]] = []
        for tag, stored in ds.items():
            group, number = tag >> 16, tag & 0xFFFF
            if not group & 1 or group in (1, 3, 5, 7, 0xFFFF):
                continue
            if 0x10 <= number <= 0xFF:
                creator = value_text(ds, tag, stored)
                if creator and creator.strip():
                    creators[(group, number)] = creator.strip()
            elif number >= 0x1000:
                private.append((int(tag), element_vr(ds, tag, stored)))
        kept: dict[int, str] = {}
        for element_tag, vr in private:
            group, block, element = element_tag >> 16, (element_tag >> 8) & 0xFF, element_tag & 0xFF
            creator = creators.get((group, block))
            kept_vr = self._kept_vr(group, creator, element, vr) if creator is not None else None
            if kept_vr is not None and kept_vr != "PN":
                kept[element_tag] = kept_vr
                kept[(group << 16) | block] = "LO"
        return kept

    def _kept_vr(self, group: int, creator: str, element: int, vr: str) -> str | None:
        """The VR the element is kept with (the table's when it was read as UN), or None."""
        declared = self.declared.get((group, creator))
        if declared is not None and element in declared:
            return vr
        table_vr = self.table.rows.get((group, creator, element))
        if table_vr is None:
            return None
        if not table_vr:
            return vr if vr in NUMERIC_VRS or vr == "UN" else None
        return table_vr if vr in (table_vr, "UN") else None


def _kept_action(vr: str) -> str:
    if vr == "UI":
        return "U"
    if vr in ("DA", "DT"):
        return "C"
    return "K"


def _declared_blocks(root: Dataset) -> dict[Block, frozenset[int]]:
    """Blocks that Private Data Element Characteristics Sequence declares safe, wholly (SAFE)
    or element by element (MIXED, Nonidentifying Private Elements); UNSAFE blocks and items
    missing a required value declare nothing."""
    declared: dict[Block, frozenset[int]] = {}
    sequence = root.get(CHARACTERISTICS)
    if sequence is None or sequence.VR != "SQ":
        return declared
    for item in sequence.value or []:
        group, creator, status = item.get(GROUP_REFERENCE), item.get(CREATOR_REFERENCE), item.get(BLOCK_STATUS)
        if group is None or creator is None or status is None or not isinstance(group.value, int):
            continue
        block = (group.value, str(creator.value or "").strip())
        if str(status.value or "").strip() == "SAFE":
            declared[block] = ALL
        elif str(status.value or "").strip() == "MIXED" and NONIDENTIFYING in item:
            listed = values_of(item[NONIDENTIFYING].value)
            declared[block] = frozenset(int(e) & 0xFF for e in listed if isinstance(e, int))
    return declared
