"""Standard attributes that PS3.15 Table E.1-1 does not list: the written policy of
``schemas/deid/unlisted_attributes.json``, resolved to one action per tag and VR.

The table lists the attributes it acts on; keeping everything else let free text through in
attributes it never names (the issuer name in Local Namespace Entity ID inside Issuer of
Accession Number Sequence, graphic layer descriptions in presentation states). So an unlisted
attribute is kept only when its VR cannot carry a name or identifier or its keyword is on the
reviewed allowlist; other text is removed (dummy or empty where its module needs it) or, under
a clean option, cleaned. The actions are the profile's codes, applied by ``ProfileActions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from lakehouse import resources
from lakehouse.errors import DeidError

__all__ = ["UnlistedActions", "UnlistedPolicy", "unlisted_actions", "unlisted_policy"]

FILE = "unlisted_attributes.json"
VR_CLASSES = ("keep", "replace_uid", "date", "age", "text")
ALLOWLISTED_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT", "UI"})
EVERY_TEXT = "*"


@dataclass(frozen=True)
class UnlistedPolicy:
    vr_class: Mapping[str, str]  # VR → one of VR_CLASSES
    allowlist: frozenset[int]
    required: Mapping[int, str]  # tag → D or Z: what removal becomes where the module needs the attribute
    cleaned_under: Mapping[str, frozenset[int] | None]  # option column → tags it cleans (None: all text)
    conditional: Mapping[int, int]  # tag → the tag it goes with
    emptied_not_removed: frozenset[int]


def _tag(keyword: str, where: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise DeidError(f"{FILE}: {where}: unknown keyword {keyword}")
    return tag


@cache
def unlisted_policy() -> UnlistedPolicy:
    """The policy, checked: known keywords, allowlisted attributes not in the table and of a
    text or UID VR (anything else is decided by its VR alone), dummy or empty only."""
    from lakehouse.deid.profile import load_profile  # the profile resolves 'emptied_not_removed' itself

    data = resources.read_json("deid", FILE)
    listed = load_profile().rules
    vr_class = {vr: cls for cls in VR_CLASSES for vr in data["by_vr"][cls]}
    allowlist = frozenset(_tag(k, "allowlist") for group in data["allowlist"].values() for k in group)
    for tag in allowlist:
        if tag in listed or dictionary_VR(tag) not in ALLOWLISTED_VRS:
            raise DeidError(f"{FILE}: allowlisted {tag:08X} is in Table E.1-1 or not text")
    required = {_tag(k, "required"): row["action"] for k, row in data["required"].items()}
    if not set(required.values()) <= {"D", "Z"}:
        raise DeidError(f"{FILE}: 'required' actions must be D or Z")
    cleaned = {
        column: None if keywords == EVERY_TEXT else frozenset(_tag(k, column) for k in keywords)
        for column, keywords in data["cleaned_under"].items()
    }
    conditional = {_tag(k, "conditional"): _tag(row["depends_on"], k) for k, row in data["conditional"].items()}
    emptied = frozenset(_tag(k, "emptied_not_removed") for k in data["emptied_not_removed"])
    if not emptied <= listed.keys():
        raise DeidError(f"{FILE}: 'emptied_not_removed' must name Table E.1-1 attributes")
    return UnlistedPolicy(vr_class, allowlist, required, cleaned, conditional, emptied)


@lru_cache(maxsize=64)
def unlisted_actions(columns: frozenset[str], dates_removed: bool) -> UnlistedActions:
    """One resolver per option set, so its cache serves every object of a run."""
    return UnlistedActions(columns, dates_removed)


class UnlistedActions:
    """The action for an unlisted attribute under one set of option columns (cached per tag
    and VR: the per-element cost is a dict lookup). None means keep as the walker keeps."""

    def __init__(self, columns: frozenset[str], dates_removed: bool):
        self.policy = unlisted_policy()
        self.dates_removed = dates_removed
        chosen = [tags for column, tags in self.policy.cleaned_under.items() if column in columns]
        self.clean_every_text = any(tags is None for tags in chosen)
        self.cleaned = frozenset().union(*(tags for tags in chosen if tags is not None))
        self._cache: dict[tuple[int, str], tuple[str | None, str]] = {}

    def action(self, tag: int, vr: str) -> tuple[str | None, str]:
        """(action, fallback of C) for an attribute Table E.1-1 does not list."""
        key = (tag, vr)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(tag, vr)
        return found

    def _resolve(self, tag: int, vr: str) -> tuple[str | None, str]:
        policy = self.policy
        removal = policy.required.get(tag, "X")
        # Ambiguous dictionary VRs ("US or SS", "OB or OW") are as safe as their least safe VR.
        classes = {policy.vr_class.get(v.strip(), "text") for v in vr.split(" or ")}
        if classes == {"keep"} or classes == {"age"} or tag in policy.allowlist:
            return None, removal
        if classes == {"replace_uid"}:
            return "U", removal
        if classes == {"date"}:
            return ("Z" if self.dates_removed else None), removal
        if self.clean_every_text or tag in self.cleaned:
            return "C", removal
        return removal, removal

    def orphans(self, ds: Dataset) -> list[int]:
        """Conditional attributes of ``ds`` whose attribute they depend on is absent or empty."""
        return [
            tag
            for tag, needs in self.policy.conditional.items()
            if tag in ds and (needs not in ds or ds[needs].value in (None, "", b""))
        ]
