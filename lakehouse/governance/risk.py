"""The re-identification risk of a request's cohort, measured on the identified catalog as the
de-identification would publish it (``lakehouse.deid.risk``), against ``[policy] min_k``.

The review measures with true study years (governance holds no project key); the export, which
holds it, measures the shifted years it will write. Both record counts only.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.config import Settings
from lakehouse.deid import date_offset_days, pseudonymize_id
from lakehouse.deid.actions import date_mode
from lakehouse.deid.engine import patient_identity
from lakehouse.deid.options import parse_options
from lakehouse.deid.risk import FloorDecision, kept, meet_floor, study_records

# catalog column → the keyword the quasi-identifier table names
CATALOG_KEYWORDS = {
    "patient_sex": "PatientSex",
    "patient_age": "PatientAge",
    "patient_birth_date": "PatientBirthDate",
    "patient_size": "PatientSize",
    "patient_weight": "PatientWeight",
    "ethnic_group": "EthnicGroup",
    "institution_name": "InstitutionName",
    "institutional_department_name": "InstitutionalDepartmentName",
    "study_date": "StudyDate",
    "modality": "Modality",
    "body_part_examined": "BodyPartExamined",
    "manufacturer": "Manufacturer",
    "manufacturer_model_name": "ManufacturerModelName",
    "station_name": "StationName",
}


def cohort_risk(settings: Settings, rows: pa.Table, options: Iterable[str], *, key: bytes | None = None
                ) -> FloorDecision:
    """k before and after the generalizations the floor asks for, over catalog ``rows``.
    With the project ``key``, shifted dates are measured as they will be written."""
    chosen = parse_options(options)
    qis = kept(chosen)
    identities = _identities(rows)
    shift = None
    if key is not None and date_mode(chosen) == "modified":
        def shift(identity: str) -> int:
            return date_offset_days(pseudonymize_id(identity, key, "patient"), key)
    columns = {"patient": identities, "study": _text(rows, "study_instance_uid")}
    for column, keyword in CATALOG_KEYWORDS.items():
        if column in rows.column_names:
            columns[keyword] = rows[column]
    records = study_records(pa.table(columns), qis, year_shift=shift)
    unshifted = shift is None and date_mode(chosen) == "modified"
    return meet_floor(records, qis, settings.policy.min_k, years_unshifted=unshifted)


def _identities(rows: pa.Table) -> pa.Array:
    """Each row's patient as the de-identification derives it (Patient ID, else name + birth date)."""
    births = pc.strftime(rows["patient_birth_date"], format="%Y%m%d").to_pylist() if rows.num_rows else []
    return pa.array(
        [
            patient_identity(pid or "", name or "", birth or "", study or "")
            for pid, name, birth, study in zip(
                rows["patient_id"].to_pylist(), rows["patient_name"].to_pylist(), births,
                rows["study_instance_uid"].to_pylist(), strict=True,
            )
        ],
        pa.string(),
    )


def _text(rows: pa.Table, column: str) -> pa.Array:
    return pc.fill_null(pc.cast(rows[column], pa.string()), "")
