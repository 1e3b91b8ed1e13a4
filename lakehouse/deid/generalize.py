"""Generalizations of quasi-identifiers (``schemas/deid/quasi_identifiers.json``): the steps an
export takes, in a fixed order, when the cohort's k would fall below ``[policy] min_k``.

The same value functions serve the risk measure (``risk``) and the objects (``apply``), so
what was measured is what leaves: a band writes its lower bound (an age of 47 in 5-year bands
leaves as ``045Y``), a removal empties the attribute (an empty value discloses nothing and
keeps Type 2 attributes present).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pydicom.dataset import Dataset

from lakehouse import resources
from lakehouse.deid.actions import age_in_years, safe_harbor_age

QI_FILE = "quasi_identifiers.json"


@dataclass(frozen=True)
class Step:
    name: str  # e.g. "age-5y"
    attribute: str  # the quasi-identifier it generalizes, e.g. "age"
    kind: str  # "band" or "remove"
    keywords: tuple[str, ...]
    width: float = 0.0


@cache
def steps() -> tuple[Step, ...]:
    """The generalizations in the order they are applied."""
    rows = resources.read_json("deid", QI_FILE)["generalizations"]
    return tuple(
        Step(r["step"], r["attribute"], r["kind"], tuple(r["keywords"]), float(r.get("width", 0))) for r in rows
    )


def step_named(name: str) -> Step:
    for step in steps():
        if step.name == name:
            return step
    raise ValueError(f"unknown generalization {name!r}")


def age_years(text: str | None) -> int | None:
    """Whole years of an AS value after Safe Harbor top-coding (90 stands for 90 or older)."""
    years = age_in_years(safe_harbor_age(text or ""))
    return None if years is None else int(years)


def band_floor(value: float, width: float) -> float:
    """The lower bound of ``value``'s band (a small epsilon keeps 1.7 in the 1.7 band)."""
    return math.floor(value / width + 1e-9) * width


def number_text(value: float, width: float) -> str:
    """A banded DS value as it is written: one decimal for sub-unit widths, whole otherwise."""
    return f"{value:.1f}" if width < 1 else str(round(value))


def band_age(text: str, width: float) -> str:
    years = age_years(text)
    return "" if years is None else f"{int(band_floor(years, width)):03d}Y"


def band_number(text: str, width: float) -> str:
    try:
        value = float(text)
    except ValueError:
        return ""
    return number_text(band_floor(value, width), width) if math.isfinite(value) else ""


def apply(ds: Dataset, names: Iterable[str]) -> None:
    """Apply the named generalizations to a de-identified dataset's top level, in place."""
    for step in map(step_named, names):
        for keyword in step.keywords:
            value = ds.get(keyword)
            if value in (None, ""):
                continue
            text = str(value)
            if step.kind == "remove":
                ds[keyword].value = ""
            elif keyword == "PatientAge":
                ds[keyword].value = band_age(text, step.width)
            else:
                ds[keyword].value = band_number(text, step.width)
