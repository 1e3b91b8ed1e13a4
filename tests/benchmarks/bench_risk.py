"""Re-identification risk benchmark, run by hand (not part of the test suite).

    .venv/bin/python tests/benchmarks/bench_risk.py                  # 100,000 patients, 8 quasi-identifiers
    .venv/bin/python tests/benchmarks/bench_risk.py --patients 20000 --repeat 5

A synthetic cohort of ``--patients`` patients (1.5 studies each on average, 1 to 3 series per
study) with 8 kept quasi-identifiers: sex, age, height, weight, study year, modality, body part
and manufacturer, values drawn to leave a realistic tail of small classes. Timed in this process
(the figure issue 16 asks for; the CLI's start-up is not part of it), best of ``--repeat``:

* lakehouse: ``study_records`` (per-instance rows → one record per study, normalized) plus
  ``meet_floor`` at min_k 5 (k, classes, patients below, the attribute that singles out most,
  then every generalization step the floor asks for);
* baseline: the bare k of the same records (built outside the clock, as an Arrow table of
  their values) with pyarrow alone: one ``group_by`` over the 8 columns counting distinct
  patients, then the minimum; no record building, attribution or generalization.

Reported: seconds for both, their ratio, and rows per second. Target: lakehouse under 2 s at
100,000 patients.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.deid.risk import meet_floor, quasi_identifiers, study_records

NAMES = ("sex", "age", "height", "weight", "study year", "modality", "body part", "manufacturer")


def cohort(patients: int, seed: int = 16) -> pa.Table:
    """Per-instance rows: patient, study and the 8 quasi-identifiers' source values."""
    rng = random.Random(seed)
    columns: dict[str, list[str]] = {k: [] for k in (
        "patient", "study", "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "StudyDate",
        "Modality", "BodyPartExamined", "Manufacturer")}
    for p in range(patients):
        sex = rng.choice("FM")
        born = rng.randrange(1930, 2005)
        size, weight = rng.gauss(1.72, 0.09), rng.gauss(78, 14)
        for s in range(1 + int(rng.random() < 0.5)):
            year = rng.randrange(2012, 2026)
            for _ in range(rng.randrange(1, 4)):
                modality, body = rng.choice([("CT", "CHEST"), ("CT", "HEAD"), ("MR", "BRAIN"), ("CR", "CHEST"),
                                              ("MR", "KNEE"), ("US", "ABDOMEN")])
                for column, value in (
                    ("patient", f"P{p}"), ("study", f"P{p}-{s}"), ("PatientSex", sex),
                    ("PatientAge", f"{min(year - born, 999):03d}Y"), ("PatientSize", f"{size:.2f}"),
                    ("PatientWeight", f"{weight:.1f}"), ("StudyDate", f"{year}0615"), ("Modality", modality),
                    ("BodyPartExamined", body), ("Manufacturer", rng.choice(["ACME", "OMNI", "ZEN"])),
                ):
                    columns[column].append(value)
    return pa.table(columns)


def lakehouse_risk(rows: pa.Table) -> tuple[float, dict]:
    qis = [qi for qi in quasi_identifiers() if qi.name in NAMES]
    started = time.perf_counter()
    decision = meet_floor(study_records(rows, qis), qis, 5)
    return time.perf_counter() - started, decision.to_dict()


def bare_k(rows: pa.Table) -> tuple[float, int]:
    """The same records' k with pyarrow only (records built the same way, outside the clock)."""
    qis = [qi for qi in quasi_identifiers() if qi.name in NAMES]
    records = study_records(rows, qis)
    table = pa.table({"patient": records.patients, **{name: records.values(name) for name in NAMES}})
    started = time.perf_counter()
    classes = table.group_by(list(NAMES)).aggregate([("patient", "count_distinct")])
    k = pc.min(classes["patient_count_distinct"]).as_py()
    return time.perf_counter() - started, int(k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = cohort(args.patients)
    ours = min((lakehouse_risk(rows) for _ in range(args.repeat)), key=lambda r: r[0])
    base = min((bare_k(rows) for _ in range(args.repeat)), key=lambda r: r[0])
    decision = ours[1]
    assert decision["before"]["k"] == base[1], "lakehouse and the bare group-by disagree on k"
    result = {
        "patients": args.patients,
        "instances": rows.num_rows,
        "records": decision["before"]["records"],
        "lakehouse_seconds": round(ours[0], 3),
        "bare_k_seconds": round(base[0], 3),
        "ratio": round(ours[0] / base[0], 1) if base[0] else None,
        "k_before": decision["before"]["k"],
        "k_after": decision["after"]["k"],
        "generalizations": decision["generalizations"],
        "refusal": decision["refusal"],
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
