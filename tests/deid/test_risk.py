"""k-anonymity over quasi-identifiers: exact k on cohorts with known classes, generalizations in
their documented order, refusals that name an attribute and a count, Safe Harbor ages."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from pydicom.dataset import Dataset

from lakehouse.deid import generalize
from lakehouse.deid.risk import kept, measure, meet_floor, quasi_identifiers, study_records

PATIENT_CHARACTERISTICS = frozenset({"retain-patient-characteristics"})


def cohort(rows: list[tuple[str, str, str, str]], **extra: list[str]) -> pa.Table:
    """Per-instance rows (patient, study, sex, age) of CT CHEST studies, one per row."""
    table = {
        "patient": [r[0] for r in rows],
        "study": [r[1] for r in rows],
        "PatientSex": [r[2] for r in rows],
        "PatientAge": [r[3] for r in rows],
        "Modality": ["CT"] * len(rows),
        "BodyPartExamined": ["CHEST"] * len(rows),
    }
    table.update(extra)
    return pa.table(table)


def people(prefix: str, count: int, sex: str, age: str) -> list[tuple[str, str, str, str]]:
    return [(f"{prefix}{i}", f"{prefix}{i}-s", sex, age) for i in range(count)]


def qis(*names: str) -> list:
    return [qi for qi in quasi_identifiers() if qi.name in names]


def test_kept_quasi_identifiers_come_from_the_profile_under_the_options() -> None:
    basic = {qi.name for qi in kept(frozenset())}
    assert {"modality", "body part", "manufacturer", "model"} <= basic  # not in Table E.1-1: kept
    assert not basic & {"sex", "age", "height", "weight", "study year", "institution", "station", "birth year"}
    characteristics = {qi.name for qi in kept(PATIENT_CHARACTERISTICS)}
    assert {"sex", "age", "height", "weight", "ethnic group"} <= characteristics
    assert "study year" in {qi.name for qi in kept(frozenset({"retain-modified-dates"}))}
    assert "station" in {qi.name for qi in kept(frozenset({"retain-device-identity"}))}
    assert {"institution", "department"} <= {qi.name for qi in kept(frozenset({"retain-institution-identity"}))}
    assert "birth year" not in {qi.name for qi in kept(frozenset({"retain-full-dates", "retain-patient-characteristics"}))}


def test_k_is_the_smallest_class_counted_in_distinct_patients() -> None:
    rows = people("f", 5, "F", "042Y") + people("m", 4, "M", "055Y") + people("o", 3, "F", "063Y")
    rows += [("f0", "f0-second", "F", "042Y")]  # a second study of a patient: still one patient
    chosen = qis("sex", "age", "modality", "body part")
    records = study_records(cohort(rows), chosen)
    assert len(records) == 13
    result = measure(records, [q.name for q in chosen], 5)
    assert (result.patients, result.classes, result.k) == (12, 3, 3)
    assert (result.classes_below, result.patients_below) == (2, 7)
    assert result.share_below == round(7 / 12, 4)
    assert result.most_at_risk_attribute == "age"  # without age, F 8 and M 4: 4 patients freed


def test_series_values_of_a_study_form_one_value() -> None:
    rows = [("a", "s", "F", "040Y"), ("a", "s", "F", "040Y")]
    table = cohort(rows)
    table = table.set_column(table.column_names.index("Modality"), "Modality", pa.array(["PT", "CT"]))
    records = study_records(table, qis("modality"))
    assert records.values("modality") == ["CT|PT"]


def test_generalization_reaches_the_floor_in_the_documented_order() -> None:
    ages = ["041Y", "042Y", "043Y", "044Y", "044Y"]
    rows = [(f"p{i}", f"s{i}", "F", age) for i, age in enumerate(ages)]
    models = {"ManufacturerModelName": ["A1", "A2", "A1", "A2", "A1"], "Manufacturer": ["Acme"] * 5}
    chosen = qis("sex", "age", "modality", "body part", "manufacturer", "model")
    decision = meet_floor(study_records(cohort(rows, **models), chosen), chosen, 5)
    assert decision.refusal is None
    assert decision.before.k == 1 and decision.after.k == 5
    assert decision.generalizations == ["model-to-manufacturer", "age-5y"]
    order = [step.name for step in generalize.steps()]
    assert [order.index(s) for s in decision.generalizations] == sorted(order.index(s) for s in decision.generalizations)
    assert decision.after.quasi_identifiers == ["sex", "age", "modality", "body part", "manufacturer"]


def test_wider_bands_come_after_removals() -> None:
    ages = ["031Y", "036Y", "038Y", "033Y", "039Y"]  # two 5-year bands, one 10-year band
    rows = [(f"p{i}", f"s{i}", "M", age) for i, age in enumerate(ages)]
    chosen = qis("sex", "age", "ethnic group")
    decision = meet_floor(study_records(cohort(rows, EthnicGroup=["X"] * 5), chosen), chosen, 5)
    assert decision.generalizations == ["age-5y", "ethnic-group-removed", "age-10y"]
    assert decision.after.k == 5


def test_refusal_names_the_attribute_and_the_class_count_never_a_value() -> None:
    rows = people("f", 6, "F", "050Y") + people("m", 2, "M", "050Y")
    chosen = qis("sex", "age", "modality")
    decision = meet_floor(study_records(cohort(rows), chosen), chosen, 5)
    assert decision.refusal == (
        "k = 2 stays below min_k 5 after every allowed generalization: sex leaves 1 classes below 5"
    )
    text = json.dumps(decision.to_dict())
    for value in ('"F"', '"M"', "050Y", '"50"', "CT"):
        assert value not in text


def test_a_cohort_smaller_than_the_floor_is_refused() -> None:
    chosen = qis("modality")
    decision = meet_floor(study_records(cohort(people("p", 3, "F", "040Y")), chosen), chosen, 5)
    assert decision.refusal == "the cohort has fewer than min_k 5 patients: no generalization can reach the floor"


def test_floor_of_one_measures_and_applies_nothing() -> None:
    rows = people("f", 1, "F", "041Y") + people("m", 1, "M", "077Y")
    chosen = qis("sex", "age")
    decision = meet_floor(study_records(cohort(rows), chosen), chosen, 1)
    assert decision.floor_off and decision.generalizations == [] and decision.refusal is None
    assert decision.before.k == 1


def test_ages_above_89_measure_as_one_class_of_90() -> None:
    rows = [("a", "a1", "F", "097Y"), ("b", "b1", "F", "091Y"), ("c", "c1", "F", "999M"), ("d", "d1", "F", "089Y")]
    records = study_records(cohort(rows), qis("age"))
    assert records.values("age") == ["90", "90", "83", "89"]  # 999 months: 83 years


@pytest.mark.parametrize(
    ("keyword", "value", "step", "written"),
    [
        ("PatientAge", "047Y", "age-5y", "045Y"),
        ("PatientAge", "047Y", "age-10y", "040Y"),
        ("PatientAge", "097Y", "age-5y", "090Y"),
        ("PatientAge", "018M", "age-5y", "000Y"),
        ("PatientSize", "1.78", "height-10cm", "1.7"),
        ("PatientWeight", "73.5", "weight-10kg", "70"),
        ("ManufacturerModelName", "Scanner 9", "model-to-manufacturer", ""),
        ("StationName", "CT01", "station-removed", ""),
    ],
)
def test_objects_carry_the_same_generalization_the_measure_used(keyword: str, value: str, step: str, written: str) -> None:
    ds = Dataset()
    setattr(ds, keyword, value)
    generalize.apply(ds, [step])
    assert str(ds[keyword].value) == written


def test_shifted_years_are_measured_as_written() -> None:
    rows = cohort([("a", "a1", "F", "040Y"), ("b", "b1", "F", "040Y")], StudyDate=["20200102", "20200102"])
    offsets = {"a": -2, "b": -400}  # 2019-12-31 and 2018-11-28
    records = study_records(rows, qis("study year"), year_shift=offsets.__getitem__)
    assert records.values("study year") == ["2019", "2018"]
    assert study_records(rows, qis("study year")).values("study year") == ["2020", "2020"]
