"""Re-identification risk of a cohort as it would be published: k-anonymity over the
quasi-identifiers the de-identification keeps, and the generalizations that meet a floor.

What is measured (``schemas/deid/quasi_identifiers.json`` says it in full): one record per
study, with the patient's, the study's and its series' kept quasi-identifiers; a class is a
combination of values; its size counts distinct patients; k is the smallest size. Results are
counts only (``RiskMeasure``, ``FloorDecision``): nothing that prints them can show a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydicom.datadict import tag_for_keyword

from lakehouse import resources
from lakehouse.deid import generalize
from lakehouse.deid.options import option_columns
from lakehouse.deid.profile import resolved_profile
from lakehouse.deid.pseudonyms import shift_da

KEPT_ACTIONS = frozenset({"K", "C"})  # C on a date is the shift: the shifted year still tells


@dataclass(frozen=True)
class QuasiIdentifier:
    name: str
    keywords: tuple[str, ...]
    level: str  # patient, study or series
    value: str  # text, age_years, number or year


@cache
def quasi_identifiers() -> tuple[QuasiIdentifier, ...]:
    rows = resources.read_json("deid", generalize.QI_FILE)["quasi_identifiers"]
    return tuple(QuasiIdentifier(r["name"], tuple(r["keywords"]), r["level"], r["value"]) for r in rows)


def kept(options: frozenset[str]) -> tuple[QuasiIdentifier, ...]:
    """The quasi-identifiers whose values the profile keeps under ``options`` (an attribute the
    profile does not list, such as Modality, is kept)."""
    actions = resolved_profile(option_columns(options)).actions
    return tuple(
        qi for qi in quasi_identifiers()
        if all(actions.get(tag_for_keyword(k) or -1, "K") in KEPT_ACTIONS for k in qi.keywords)
    )


@dataclass(frozen=True)
class RiskMeasure:
    """k-anonymity of one set of records against ``min_k``; counts only."""

    patients: int
    records: int
    quasi_identifiers: list[str]
    classes: int
    k: int
    min_k: int
    classes_below: int
    patients_below: int
    most_at_risk_attribute: str | None  # the attribute whose removal frees most patients

    @property
    def share_below(self) -> float:
        return round(self.patients_below / self.patients, 4) if self.patients else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_below": self.share_below}


@dataclass(frozen=True)
class FloorDecision:
    """What the floor asks of a cohort: k before and after the generalizations applied, or why
    it cannot be met. ``min_k`` 1 is the floor switched off (measured, nothing applied)."""

    min_k: int
    before: RiskMeasure
    after: RiskMeasure
    generalizations: list[str] = field(default_factory=list)
    refusal: str | None = None
    years_unshifted: bool = False  # measured on true study years (no key at hand to shift them)

    @property
    def floor_off(self) -> bool:
        return self.min_k <= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_k": self.min_k,
            "floor_off": self.floor_off,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "generalizations": list(self.generalizations),
            "refusal": self.refusal,
            "years_unshifted": self.years_unshifted,
        }

    def audit_fields(self) -> dict[str, Any]:
        return audit_fields(self.to_dict())

    def summary_line(self) -> str:
        steps = ", ".join(self.generalizations) or "none"
        floor = "off" if self.floor_off else str(self.min_k)
        return f"k = {self.before.k} before, {self.after.k} after generalization ({steps}); floor min_k {floor}"


def audit_fields(risk: dict[str, Any]) -> dict[str, Any]:
    """A ``FloorDecision.to_dict()`` as the audit's flat details (``risk_…``: counts, names, codes)."""
    before, after = risk["before"], risk["after"]
    return {
        "risk_min_k": risk["min_k"],
        "risk_quasi_identifiers": before["quasi_identifiers"],
        "risk_patients": before["patients"],
        "risk_k_before": before["k"],
        "risk_patients_below_before": before["patients_below"],
        "risk_generalizations": risk["generalizations"],
        "risk_k_after": after["k"],
        "risk_classes_below_after": after["classes_below"],
        "risk_patients_below_after": after["patients_below"],
        "risk_most_at_risk_attribute": after["most_at_risk_attribute"] or before["most_at_risk_attribute"] or "",
        "risk_refused": risk["refusal"] is not None,
    }


@dataclass(frozen=True)
class Records:
    """One record per study, as codes: each record's patient, and per quasi-identifier a code
    into that attribute's sorted class values (``""``: missing). Codes keep the measure in numpy."""

    patients: np.ndarray
    columns: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.patients.size)

    def values(self, name: str) -> list[str]:
        codes, values = self.columns[name]
        return [values[c] for c in codes]

    def has_values(self, name: str) -> bool:
        return any(v != "" for v in self.columns[name][1])

    def only(self, names: Sequence[str]) -> Records:
        return Records(self.patients, {n: self.columns[n] for n in names})

    def mapped(self, name: str, convert: Callable[[str], str]) -> Records:
        """The records with ``convert`` applied to one attribute's values (classes may merge)."""
        codes, values = self.columns[name]
        merged, inverse = _sorted_codes([convert(v) for v in values])
        return Records(self.patients, {**self.columns, name: (inverse[codes], merged)})


def study_records(
    instances: pa.Table, qis: Sequence[QuasiIdentifier], *, year_shift: Callable[[str], int] | None = None
) -> Records:
    """One record per (patient, study) from per-instance rows with columns ``patient``, ``study``
    and each quasi-identifier's keyword (missing columns count as empty). ``year_shift`` maps a
    patient to the days its dates move by (identified sources exported with modified dates)."""
    people, people_values = _codes(instances["patient"])
    studies, _ = _codes(instances["study"])
    record_of_row = _dense(people * (int(studies.max(initial=0)) + 1) + studies)
    records = int(record_of_row.max(initial=-1)) + 1
    first = _first_rows(record_of_row, records)
    columns: dict[str, tuple[np.ndarray, list[str]]] = {}
    for qi in qis:
        keyword = qi.keywords[0]
        raw = instances[keyword] if keyword in instances.column_names else pa.nulls(instances.num_rows, pa.string())
        if qi.value == "year" and year_shift is not None:
            raw = _shifted_dates(_text(raw), people, people_values, year_shift)
        raw_codes, raw_values = _codes(_text(raw))
        values, normal = _sorted_codes([_NORMALIZE[qi.value](v) for v in raw_values])
        row_codes = normal[raw_codes]
        if qi.level == "series":
            columns[qi.name] = _value_sets(record_of_row, row_codes, values, records)
        else:  # one value per study: the greatest, so a value beats a missing one ("" sorts first)
            per_record = np.full(records, -1, np.int64)
            np.maximum.at(per_record, record_of_row, row_codes)
            columns[qi.name] = (per_record, values)
    return Records(people[first], columns)


def _text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        values = pc.strftime(values, format="%Y%m%d")
    return pc.fill_null(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), "")


def _codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes of a column (nulls read as "") and the values they stand for."""
    encoded = pc.dictionary_encode(pc.fill_null(pc.cast(values, pa.string()), ""))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], pa.string()).dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def _sorted_codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The sorted distinct ``values`` and, for each input position, its code among them."""
    distinct = sorted(set(values))
    position = {v: i for i, v in enumerate(distinct)}
    return distinct, np.array([position[v] for v in values], np.int64)


def _value_sets(record_of_row: np.ndarray, row_codes: np.ndarray, values: list[str], records: int
                ) -> tuple[np.ndarray, list[str]]:
    """Per record, the set of its rows' values ('CT|PT'), as a code into the sorted sets."""
    width = len(values) + 1
    pairs = np.sort(_distinct(record_of_row * width + row_codes))
    record, code = pairs // width, pairs % width
    counts = np.bincount(record, minlength=records)
    matrix = np.full((records, int(counts.max(initial=1))), -1, np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    matrix[record, np.arange(pairs.size) - starts[record]] = code
    set_of_record = _combined(list(matrix.T + 1))
    sets = int(set_of_record.max(initial=-1)) + 1
    texts = ["|".join(values[c] for c in matrix[row] if c >= 0) for row in _first_rows(set_of_record, sets)]
    distinct, remap = _sorted_codes(texts)
    return remap[set_of_record], distinct


def _dense(keys: np.ndarray) -> np.ndarray:
    """Dense ids 0..n-1 of the distinct ``keys`` (Arrow's hash encoding: no sort)."""
    return np.asarray(pc.dictionary_encode(pa.array(keys)).indices.to_numpy(zero_copy_only=False), np.int64)


def _distinct(keys: np.ndarray) -> np.ndarray:
    return np.asarray(pc.unique(pa.array(keys)).to_numpy(zero_copy_only=False), np.int64)


def _first_rows(ids: np.ndarray, count: int) -> np.ndarray:
    """For each id 0..count-1, the first position holding it."""
    first = np.full(count, ids.size, np.int64)
    np.minimum.at(first, ids, np.arange(ids.size))
    return first


def _shifted_dates(dates: pa.Array, people: np.ndarray, people_values: list[str],
                   year_shift: Callable[[str], int]) -> pa.Array:
    """Each row's date moved by its patient's offset (computed once per patient and date)."""
    date_codes, date_values = _codes(dates)
    pairs, inverse = np.unique(people * (len(date_values) + 1) + date_codes, return_inverse=True)
    offsets: dict[int, int] = {}
    moved = []
    for pair in pairs.tolist():
        person, date = divmod(pair, len(date_values) + 1)
        if person not in offsets:
            offsets[person] = year_shift(people_values[person])
        text = date_values[date]
        moved.append(shift_da(text.replace("-", ""), offsets[person]) or "" if text else "")
    return pa.array(moved, pa.string()).take(pa.array(inverse.reshape(-1)))


def _age(text: str) -> str:
    years = generalize.age_years(text)
    return "" if years is None else str(years)


def _number(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return ""
    return f"{number:g}" if math.isfinite(number) else ""


def _year(text: str) -> str:
    digits = text.replace("-", "")
    return digits[:4] if len(digits) >= 8 and digits[:4].isdigit() else ""


_NORMALIZE: dict[str, Callable[[str], str]] = {"age_years": _age, "number": _number, "year": _year, "text": str}


def generalized(records: Records, step: generalize.Step) -> Records:
    """``records`` with a band applied to one attribute (a removal drops the attribute instead)."""
    return records.mapped(step.attribute, lambda value: _banded(value, step.width))


def _banded(value: str, width: float) -> str:
    if not value:
        return ""
    return generalize.number_text(generalize.band_floor(float(value), width), width)


def measure(records: Records, names: Sequence[str], min_k: int, *, attribute: bool = True) -> RiskMeasure:
    """k-anonymity of ``records`` over the quasi-identifiers ``names``; with ``attribute``, also
    the attribute whose removal frees most patients from classes below ``min_k``."""
    codes = [records.columns[name][0] for name in names]
    figures = _figures(_combined(codes), records.patients, min_k)
    worst = None
    if attribute and figures.patients_below and names:
        # classes without attribute i: the combination of the ones before it and the ones after
        before = [np.zeros(len(records), np.int64)]
        for column in codes:
            before.append(_combined([before[-1], column]))
        after = [np.zeros(len(records), np.int64)]
        for column in reversed(codes):
            after.append(_combined([column, after[-1]]))
        after.reverse()
        freed = [
            figures.patients_below - _figures(_combined([before[i], after[i + 1]]), records.patients, min_k).patients_below
            for i in range(len(codes))
        ]
        if max(freed) > 0:
            worst = names[freed.index(max(freed))]
    return RiskMeasure(
        patients=int(_distinct(records.patients).size),
        records=len(records),
        quasi_identifiers=list(names),
        classes=figures.classes,
        k=figures.k,
        min_k=min_k,
        classes_below=figures.classes_below,
        patients_below=figures.patients_below,
        most_at_risk_attribute=worst,
    )


@dataclass(frozen=True)
class _Figures:
    classes: int
    k: int
    classes_below: int
    patients_below: int


def _combined(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Dense class ids of the combinations of ``columns`` (re-densified after each column, so
    the ids never overflow whatever the number of attributes)."""
    if not columns:
        return np.zeros(0, np.int64)
    ids = np.zeros(columns[0].size, np.int64)
    for column in columns:
        ids = _dense(ids * (int(column.max(initial=0)) + 1) + column)
    return ids


def _figures(classes: np.ndarray, patients: np.ndarray, min_k: int) -> _Figures:
    """Class sizes in distinct patients, the smallest, and what falls below ``min_k``."""
    if classes.size == 0:
        return _Figures(0, 0, 0, 0)
    people = int(patients.max()) + 1
    sizes = np.bincount(_distinct(classes * people + patients) // people)
    small = sizes < min_k
    flagged = np.zeros(people, bool)
    flagged[patients[small[classes]]] = True
    return _Figures(
        classes=int(np.count_nonzero(sizes)),
        k=int(sizes[sizes > 0].min()),
        classes_below=int(np.count_nonzero(small & (sizes > 0))),
        patients_below=int(np.count_nonzero(flagged)),
    )


def meet_floor(records: Records, qis: Sequence[QuasiIdentifier], min_k: int, *, years_unshifted: bool = False,
               may_generalize: bool = True) -> FloorDecision:
    """Apply the generalizations in their fixed order until no patient is in a class below
    ``min_k`` (a step that would change no value is skipped); a refusal (one line, counts and
    attribute names only) when they cannot."""
    names = [qi.name for qi in qis]
    before = measure(records, names, min_k)
    if min_k <= 1 or before.patients_below == 0:
        return FloorDecision(min_k, before, before, years_unshifted=years_unshifted)
    if not may_generalize:  # the caller cannot rewrite what it publishes: measure and refuse
        return FloorDecision(min_k, before, before, refusal=_refusal(before, min_k, "with no generalization"))
    applied: list[str] = []
    after = before
    for step in generalize.steps():
        if step.attribute not in names or not records.has_values(step.attribute):
            continue  # not kept, or no value to generalize: the step would change nothing
        if step.kind == "remove":
            names.remove(step.attribute)
        else:
            banded = generalized(records, step)
            if banded.columns[step.attribute][1] == records.columns[step.attribute][1]:
                continue  # no two values fell into one band and none changed
            records = banded
        applied.append(step.name)
        after = measure(records, names, min_k, attribute=False)
        if after.patients_below == 0:
            return FloorDecision(min_k, before, after, applied, years_unshifted=years_unshifted)
    after = measure(records, names, min_k)  # again, naming the attribute that stands in the way
    return FloorDecision(min_k, before, after, applied, _refusal(after, min_k, "after every allowed generalization"),
                         years_unshifted)


def _refusal(after: RiskMeasure, min_k: int, how: str) -> str:
    if after.patients < min_k:
        return f"the cohort has fewer than min_k {min_k} patients: no generalization can reach the floor"
    attribute = after.most_at_risk_attribute or "the kept attributes together"
    return f"k = {after.k} stays below min_k {min_k} {how}: {attribute} leaves {after.classes_below} classes below {min_k}"
