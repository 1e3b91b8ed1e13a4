"""Patient-level splits that never leak and never move.

A patient's split is recorded once per project (``dataset_splits``, insert-new: the first
assignment wins, even between racing builds) and every later build and every other dataset
of the project reuses it. New patients are taken in the order of a hash of their pseudonym
(the pseudonym is itself the project's keyed hash of the Patient ID, so the order is stable
and cannot be steered or linked across projects) and each goes to the split furthest below
its target ratio within the patient's stratum; frozen splits take no one new.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lakehouse.errors import LakehouseError, Refused

DEFAULT_SPLITS = "train=0.7,val=0.15,test=0.15"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SplitError(LakehouseError):
    exit_code = 2


def parse_splits(text: str) -> dict[str, float]:
    """``train=0.7,val=0.15,test=0.15`` as ordered ratios that sum to 1."""
    ratios: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            ratio = float(value) if sep else math.nan
        except ValueError:
            ratio = math.nan
        if not _NAME.match(name) or not (0 < ratio <= 1) or name in ratios:
            raise SplitError(f"--split part {part!r} is not NAME=RATIO (a new lower-case name, 0 < ratio <= 1)")
        ratios[name] = ratio
    if not ratios or abs(sum(ratios.values()) - 1) > 1e-6:
        raise SplitError("--split ratios must add up to 1")
    return ratios


def rank(patient_id: str) -> str:
    """The order in which new patients fill the splits."""
    return hashlib.sha256(f"split:{patient_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Assignment:
    patient_id: str
    split: str
    stratum: str


def patient_strata(values: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One stratum per patient from (patient, stratum of one member) pairs: the most common,
    ties broken by the stratum's text, so the choice never depends on row order."""
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for patient, stratum in values:
        counts[patient][stratum] += 1
    return {p: min(c.items(), key=lambda item: (-item[1], item[0]))[0] for p, c in counts.items()}


def assign(
    strata: Mapping[str, str],
    existing: Mapping[str, Assignment],
    ratios: Mapping[str, float],
    frozen: Iterable[str] = (),
) -> list[Assignment]:
    """Splits for the patients of ``strata`` not in ``existing``; existing ones never move.

    Counts per stratum start from the existing patients of this selection (by their stratum
    now), so new patients even out what earlier builds left, toward the target ratios."""
    frozen = set(frozen)
    unknown = frozen - set(ratios)
    if unknown:
        raise SplitError(f"--freeze names splits not in --split: {', '.join(sorted(unknown))}")
    stray = Counter(a.split for p, a in existing.items() if p in strata and a.split not in ratios)
    if stray:
        names = ", ".join(f"{name} ({count} patients)" for name, count in sorted(stray.items()))
        raise Refused(f"patients of this selection are already in splits {names} of the project; "
                      "--split must name every split the project uses")
    open_splits = [s for s in ratios if s not in frozen]
    newcomers = sorted((p for p in strata if p not in existing), key=rank)
    if newcomers and not open_splits:
        raise SplitError("every split is frozen, so new patients have nowhere to go")
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for patient, stratum in strata.items():
        if patient in existing:
            counts[stratum][existing[patient].split] += 1
    made: list[Assignment] = []
    for patient in newcomers:
        stratum = strata[patient]
        tally = counts[stratum]
        total = sum(tally.values()) + 1
        split = max(open_splits, key=lambda s: (ratios[s] * total - tally[s], -open_splits.index(s)))
        tally[split] += 1
        made.append(Assignment(patient, split, stratum))
    return made
