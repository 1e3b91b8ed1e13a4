"""The de-identification options of PS3.15 Annex E, as data from ``schemas/deid/options.json``.

Option names are kebab-case (``retain-uids``); each maps to its CID 7050 code and to its
column in the profile table. ``parse_options`` is the one validation of option names: the
governance calls it when a request is submitted, the export and ``lakehouse deid`` when they
run, so a request that passes submit is never refused later for its options.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from lakehouse import resources
from lakehouse.errors import InvalidDeidOption

PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")


@dataclass(frozen=True)
class OptionSpec:
    name: str
    code: str
    meaning: str
    column: str | None


@dataclass(frozen=True)
class OptionCatalog:
    options: dict[str, OptionSpec]
    mutually_exclusive: tuple[frozenset[str], ...]
    refused: dict[str, str]


@lru_cache(maxsize=1)
def option_catalog() -> OptionCatalog:
    data = resources.read_json("deid", "options.json")
    options = {
        o["name"]: OptionSpec(o["name"], o["code"], o["meaning"], o.get("column"))
        for o in data["options"]
    }
    exclusive = tuple(frozenset(group) for group in data.get("mutually_exclusive", []))
    return OptionCatalog(options, exclusive, dict(data.get("refused", {})))


def parse_options(names: Iterable[str]) -> frozenset[str]:
    """Validate option names (blank ones are ignored, repeats count once); unknown, refused or
    mutually exclusive names raise InvalidDeidOption with a one-line reason."""
    catalog = option_catalog()
    chosen = frozenset(n.strip() for n in names if n and n.strip())
    unknown = sorted(chosen - catalog.options.keys())
    if unknown:
        known = ", ".join(sorted(catalog.options.keys() - catalog.refused.keys()))
        listed = ", ".join(repr(n[:64]) for n in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise InvalidDeidOption(f"unknown de-identification option{plural} {listed}; known: {known}")
    for name in sorted(chosen & catalog.refused.keys()):
        raise InvalidDeidOption(f"de-identification option {name} is refused: {catalog.refused[name]}")
    for group in catalog.mutually_exclusive:
        clash = sorted(chosen & group)
        if len(clash) > 1:
            raise InvalidDeidOption(f"options {' and '.join(clash)} are mutually exclusive; choose one")
    return chosen


def option_columns(options: frozenset[str]) -> frozenset[str]:
    """The profile-table columns of the chosen options."""
    catalog = option_catalog()
    return frozenset(c for n in options if (c := catalog.options[n].column))


def method_codes(options: frozenset[str]) -> list[tuple[str, str, str]]:
    """CID 7050 (code value, scheme, meaning) of the profile and the chosen options, in table order."""
    catalog = option_catalog()
    codes = [PROFILE_CODE]
    codes += [(o.code, "DCM", o.meaning) for o in catalog.options.values() if o.name in options]
    return codes
