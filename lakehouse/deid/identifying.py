"""The attributes that identify the source object, and how each check looks for their values:
one list, as data in ``schemas/deid/identifying_attributes.json`` (loaded once per process).

Each attribute has a kind (name, id, address, site, date), and each check names the kinds
it uses: ``header`` (the values the profile removes, looked for by the C action, the
residual-PHI scan and the export's gate) and ``pixels`` (the OCR check of masked frames).
The file says why a check leaves a kind out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from pydicom.datadict import keyword_for_tag

from lakehouse import resources
from lakehouse.errors import DeidError

__all__ = ["KINDS", "IdentifyingAttribute", "IdentifyingAttributes", "checked_by", "identifying_attributes", "parts"]

FILE = "identifying_attributes.json"
KINDS = frozenset({"name", "id", "address", "site", "date"})
CHECKS = frozenset({"header", "pixels"})

# How a value is cut into the pieces that are looked for (pieces shorter than the caller's
# minimum identify nobody and are dropped there).
NAME_SPLIT = re.compile(r"[\^=\s,]+")  # person name components and groups
ADDRESS_SPLIT = re.compile(r"[\^,;\r\n]+")  # address lines and parts


@dataclass(frozen=True)
class IdentifyingAttribute:
    tag: int
    keyword: str
    kind: str


@dataclass(frozen=True)
class IdentifyingAttributes:
    attributes: tuple[IdentifyingAttribute, ...]
    checks: Mapping[str, frozenset[str]]  # check → the kinds it uses


@cache
def identifying_attributes() -> IdentifyingAttributes:
    """The list, checked: known kinds and checks, tags matching their keywords, no tag twice."""
    data = resources.read_json("deid", FILE)
    found: dict[int, IdentifyingAttribute] = {}
    for row in data["attributes"]:
        tag = int(row["tag"], 16)
        if row["kind"] not in KINDS or keyword_for_tag(tag) != row["keyword"] or tag in found:
            raise DeidError(f"{FILE}: attribute {row['tag']} ({row['keyword']}) is unknown, mistyped or repeated")
        found[tag] = IdentifyingAttribute(tag, row["keyword"], row["kind"])
    checks = {name: frozenset(check["kinds"]) for name, check in data["checks"].items()}
    if set(checks) != CHECKS or any(not kinds <= KINDS for kinds in checks.values()):
        raise DeidError(f"{FILE}: checks must be {sorted(CHECKS)}, each with kinds from {sorted(KINDS)}")
    return IdentifyingAttributes(tuple(found.values()), checks)


@cache
def checked_by(check: str) -> Mapping[int, str]:
    """Tag → kind of the attributes whose values ``check`` looks for."""
    table = identifying_attributes()
    return {a.tag: a.kind for a in table.attributes if a.kind in table.checks[check]}


def parts(kind: str, value: str) -> list[str]:
    """The pieces of one value that are looked for: components of a name, parts of an
    address, the whole value otherwise (dates are matched in their written forms by each check)."""
    if kind == "name":
        return NAME_SPLIT.split(value)
    if kind == "address":
        return ADDRESS_SPLIT.split(value)
    return [value]
