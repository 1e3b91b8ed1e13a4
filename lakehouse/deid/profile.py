"""PS3.15 Table E.1-1 and Table E.3.4-1 as data, resolved to one action per attribute.

Action codes: D dummy, Z empty, X remove, K keep, C clean, U replace UID, and ``U*``
(keep a sequence, replacing the UIDs inside). How combined codes resolve:

1. Option columns first. When a chosen option has a column for the attribute, that column's
   action applies; if several chosen options apply, the most conservative one wins
   (X > Z > D > U > C > K). Rows with date columns (Retain Longitudinal ...) take their action
   from the date columns only, so no other option can retain a real date.
2. Otherwise the Basic Profile code. A combined code (X/Z, X/D, X/Z/D, Z/D, X/Z/U*) takes the
   choice in ``schemas/deid/combined_choices.json`` (attributes that are Type 1/2 in common IODs
   get a dummy, empty or UID-replaced value so the object stays valid); any other combined
   code takes its most conservative choice: X, else Z, else D.
3. Standard attributes not in the table follow the written policy of
   ``schemas/deid/unlisted_attributes.json`` (``lakehouse.deid.unlisted``): kept only when their
   VR cannot carry identity or they are allowlisted. That file also lists the few attributes
   whose plain X is applied as Z because they are Type 2 in a common IOD (an empty value
   discloses nothing more). Private attributes follow the ``PRIVATE`` row (removed).
4. Every attribute whose action is C also gets a fallback: its Basic Profile action (rule 2,
   no options), used when cleaning leaves nothing that is known to be safe. A fallback other
   than X, Z or D (never in this edition) becomes D.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lakehouse import resources
from lakehouse.deid.unlisted import unlisted_policy

PROFILE_FILE = "ps315_2026d.json"
ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U"})
CONSERVATIVE_ORDER = ("X", "Z", "D", "U", "U*", "C", "K")
DATE_COLUMNS = frozenset({"retain_longitudinal_full_dates", "retain_longitudinal_modified_dates"})

# Pattern rows of Table E.1-1.
CURVE_ROW = "50xxxxxx"
OVERLAY_DATA_ROW = "60xx3000"
OVERLAY_COMMENTS_ROW = "60xx4000"
PRIVATE_ROW = "PRIVATE"


@dataclass(frozen=True)
class Rule:
    key: str  # 8 hex digits, a pattern row, or "code^scheme" for content items
    name: str
    basic: str
    options: Mapping[str, str]


@dataclass(frozen=True)
class Profile:
    edition: str
    source: Mapping[str, Any]
    rules: Mapping[int, Rule]
    patterns: Mapping[str, Rule]
    content_items: Mapping[tuple[str, str], tuple[Rule, ...]]
    choices: Mapping[str, str]


@lru_cache(maxsize=1)
def load_profile() -> Profile:
    """The vendored profile table (loaded once per process)."""
    data = resources.read_json("deid", PROFILE_FILE)
    choices = resources.read_json("deid", "combined_choices.json")["choices"]
    rules: dict[int, Rule] = {}
    patterns: dict[str, Rule] = {}
    for row in data["rules"]:
        rule = Rule(row["tag"], row["name"], row["basic"], dict(row["options"]))
        if row["tag"] in (CURVE_ROW, OVERLAY_DATA_ROW, OVERLAY_COMMENTS_ROW, PRIVATE_ROW):
            patterns[row["tag"]] = rule
        else:
            rules[int(row["tag"], 16)] = rule
    content: dict[tuple[str, str], tuple[Rule, ...]] = {}
    for row in data["content_items"]:  # a few codes appear twice (per value type): keep both
        key = (row["code"], row["scheme"])
        rule = Rule(f"{row['code']}^{row['scheme']}", row["meaning"], row["basic"], dict(row["options"]))
        content[key] = content.get(key, ()) + (rule,)
    return Profile(
        edition=data["source"]["edition"],
        source=data["source"],
        rules=rules,
        patterns=patterns,
        content_items=content,
        choices={tag: c["action"] for tag, c in choices.items()},
    )


def resolve(rule: Rule, columns: frozenset[str], choices: Mapping[str, str] | None = None) -> str:
    """One action for ``rule`` under the chosen option columns (see the module docstring)."""
    relevant = rule.options.keys() & columns
    if relevant & DATE_COLUMNS:
        relevant &= DATE_COLUMNS
    elif rule.options.keys() & DATE_COLUMNS:
        relevant = set()
    if relevant:
        return _most_conservative({rule.options[c] for c in relevant})
    if "/" not in rule.basic:
        return rule.basic
    if choices and rule.key in choices:
        return choices[rule.key]
    return _most_conservative(set(rule.basic.split("/")) - {"U*"} or {"U*"})


def _most_conservative(actions: set[str]) -> str:
    return next(a for a in CONSERVATIVE_ORDER if a in actions)


@dataclass(frozen=True)
class ResolvedProfile:
    """Actions for one set of option columns: exact tags, pattern rows and content items."""

    edition: str
    actions: Mapping[int, str]
    curve: str
    overlay_data: str
    overlay_comments: str
    private: str
    content: Mapping[tuple[str, str], str]
    fallback: Mapping[int, str]  # for the tags whose action is C (see rule 4)


@lru_cache(maxsize=64)
def resolved_profile(columns: frozenset[str]) -> ResolvedProfile:
    """Every action resolved once per option set, so the per-element work is a dict lookup."""
    profile = load_profile()
    actions = {tag: resolve(rule, columns, profile.choices) for tag, rule in profile.rules.items()}
    for tag in unlisted_policy().emptied_not_removed:
        if actions[tag] == "X":
            actions[tag] = "Z"
    fallback = {
        tag: _fallback(resolve(profile.rules[tag], frozenset(), profile.choices))
        for tag, action in actions.items()
        if action == "C"
    }
    p = profile.patterns
    content = {
        key: _most_conservative({_content_action(rule, columns) for rule in rules})
        for key, rules in profile.content_items.items()
    }
    return ResolvedProfile(
        edition=profile.edition,
        actions=actions,
        curve=resolve(p[CURVE_ROW], columns),
        overlay_data=resolve(p[OVERLAY_DATA_ROW], columns),
        overlay_comments=resolve(p[OVERLAY_COMMENTS_ROW], columns),
        private=resolve(p[PRIVATE_ROW], columns),
        content=content,
        fallback=fallback,
    )


def _fallback(action: str) -> str:
    return action if action in ("X", "Z", "D") else "D"


def _content_action(rule: Rule, columns: frozenset[str]) -> str:
    """Content items: X/D keeps the SR tree's structure with a dummy value (D)."""
    action = resolve(rule, columns)
    return "D" if rule.basic == "X/D" and action == "X" else action


def profile_label() -> str:
    """The profile's name as recorded in provenance and lineage, e.g. 'DICOM PS3.15 2026d Basic Profile'."""
    return f"DICOM PS3.15 {load_profile().edition} Basic Profile"
