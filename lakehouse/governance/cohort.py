"""Cohort criteria (schemas/governance/cohort.json) and their resolution against the catalog.

Criteria are all optional and ANDed. Values are checked strictly; a refusal
names the criterion and what is wrong, never the value (values may be
identifiers such as Patient IDs).

A cohort resolves to every live object the catalog could read: ``ok`` and also
``warning`` (big endian, deflated, no file meta: valid DICOM that de-identification
handles; no SOP Instance UID: it cannot be published and is quarantined at export).
The preview counts them per warning, so none disappears between the catalog and
the quarantine without a count.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from lakehouse import lake, resources
from lakehouse.config import Settings
from lakehouse.errors import Refused

# Catalog columns added for the risk measure: a catalog written before them reads them as unknown.
NEW_QUASI_IDENTIFIER_COLUMNS = (
    "patient_age",
    "patient_size",
    "patient_weight",
    "ethnic_group",
    "institution_name",
    "institutional_department_name",
    "station_name",
)
CATALOG_COLUMNS = [
    "key",
    "etag",
    "size",
    "sop_class_uid",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "patient_id",
    "study_date",
    "accession_number",
    "modality",
    "body_part_examined",
    "study_description",
    "series_description",
    "burned_in_annotation",
    "parse_status",
    "parse_error",
    "deleted",
    "storage_class",  # the cost of reading it (``governance.cost``)
    # the identity the de-identification derives a pseudo patient from, and the quasi-identifiers
    # (``governance.risk``): in memory only, never printed
    "patient_name",
    "patient_birth_date",
    "patient_sex",
    "manufacturer",
    "manufacturer_model_name",
    *NEW_QUASI_IDENTIFIER_COLUMNS,
]
READABLE = ("ok", "warning")  # parse statuses a cohort selects from
INT_MAX = 2**63 - 1  # the widest whole number Arrow and Delta hold; criteria state tighter bounds


@cache
def cohort_schema() -> dict[str, Any]:
    data: dict[str, Any] = resources.read_json("governance", "cohort.json")
    return data


def load_cohort_file(path: Path) -> dict[str, Any]:
    """Criteria from a cohort YAML file, validated."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError:
        raise Refused(f"cohort file {path.name} cannot be read") from None
    except yaml.YAMLError:
        raise Refused(f"cohort file {path.name} is not valid YAML") from None
    return parse_cohort(raw)


def parse_cohort(raw: Any) -> dict[str, Any]:
    """Validated, normalized criteria (dates as ISO strings, lists sorted/unique)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Refused("cohort must be a mapping of criteria")
    spec = cohort_schema()["criteria"]
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in spec:
            raise Refused(f"cohort: unknown criterion {name!r}; known: {', '.join(spec)}")
        out[name] = _check(name, value, spec[name])
    start, end = out.get("study_date_from"), out.get("study_date_to")
    if start and end and start > end:
        raise Refused("cohort: study_date_from is after study_date_to")
    return out


def _check(name: str, value: Any, rule: dict[str, Any]) -> Any:
    kind = rule["kind"]
    if kind == "date":
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        raise Refused(f"cohort: {name} must be a date YYYY-MM-DD")
    if kind == "int":
        low, high = rule.get("min", 0), rule.get("max", INT_MAX)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Refused(f"cohort: {name} must be a whole number from {low} to {high}")
        return value
    values = [value] if isinstance(value, str) and name == "description_contains" else value
    if not isinstance(values, list) or not values:
        raise Refused(f"cohort: {name} must be a non-empty list")
    pattern = re.compile(rule["pattern"])
    for i, item in enumerate(values):
        if not isinstance(item, str) or not pattern.fullmatch(item) or len(item) > rule.get("max_length", 64):
            raise Refused(f"cohort: {name} item {i + 1} is not a valid value")
    return sorted(set(values))


def identifier_criteria() -> set[str]:
    return {n for n, r in cohort_schema()["criteria"].items() if r.get("identifier")}


def redact(cohort: dict[str, Any]) -> dict[str, Any]:
    """Criteria fit to print: identifier lists become their counts."""
    hidden = identifier_criteria()
    return {k: (f"<{len(v)} values>" if k in hidden else v) for k, v in cohort.items()}


def read_catalog(settings: Settings, *, at: lake.Snapshot | None = None) -> pa.Table:
    """Live catalog rows of readable objects (parsed, with or without warnings; not deleted),
    of the current catalog or of the pinned version ``at`` (a manifest is frozen from, and
    re-checked against, one version)."""
    table = _read(at or lake.table(settings, "catalog"), CATALOG_COLUMNS)
    live = pc.and_(pc.is_in(table["parse_status"], pa.array(READABLE)), pc.invert(table["deleted"]))
    return table.filter(live)


def _read(source: lake.Snapshot | lake.Table, columns: list[str]) -> pa.Table:
    try:
        return source.read(columns=columns)
    except pa.ArrowInvalid:  # a catalog written before these columns: their values are unknown
        base = source.read(columns=[c for c in columns if c not in NEW_QUASI_IDENTIFIER_COLUMNS])
        for column in NEW_QUASI_IDENTIFIER_COLUMNS:
            base = base.append_column(column, pa.nulls(base.num_rows, pa.string()))
        return base.select(columns)


def select(catalog: pa.Table, cohort: dict[str, Any]) -> pa.Table:
    """Catalog rows matching every criterion, sorted by key."""
    mask = pa.array([True] * catalog.num_rows, pa.bool_())
    for name, column in (
        ("modalities", "modality"),
        ("body_parts", "body_part_examined"),
        ("sop_classes", "sop_class_uid"),
        ("accession_numbers", "accession_number"),
        ("patient_ids", "patient_id"),
    ):
        if name in cohort:
            mask = pc.and_kleene(mask, pc.is_in(catalog[column], pa.array(cohort[name])))
    if "study_date_from" in cohort:
        bound = pa.scalar(date.fromisoformat(cohort["study_date_from"]), pa.date32())
        mask = pc.and_kleene(mask, pc.greater_equal(catalog["study_date"], bound))
    if "study_date_to" in cohort:
        bound = pa.scalar(date.fromisoformat(cohort["study_date_to"]), pa.date32())
        mask = pc.and_kleene(mask, pc.less_equal(catalog["study_date"], bound))
    if "description_contains" in cohort:
        any_match = pa.array([False] * catalog.num_rows, pa.bool_())
        for text in cohort["description_contains"]:
            for column in ("study_description", "series_description"):
                hit = pc.fill_null(pc.match_substring(catalog[column], text, ignore_case=True), False)
                any_match = pc.or_(any_match, hit)
        mask = pc.and_kleene(mask, any_match)
    selected = catalog.filter(pc.fill_null(mask, False))
    if "max_studies" in cohort:
        selected = _first_studies(selected, cohort["max_studies"])
    return selected.sort_by([("key", "ascending")])


def _first_studies(rows: pa.Table, limit: int) -> pa.Table:
    studies = (
        rows.group_by("study_instance_uid")
        .aggregate([("study_date", "min")])
        .filter(pc.is_valid(pc.field("study_instance_uid")))
        .sort_by([("study_date_min", "ascending"), ("study_instance_uid", "ascending")])
    )
    keep = studies["study_instance_uid"].slice(0, limit)
    return rows.filter(pc.fill_null(pc.is_in(rows["study_instance_uid"], keep), False))


def exclude_patients(rows: pa.Table, patient_ids: set[str]) -> tuple[pa.Table, int]:
    """Rows without the opted-out patients, and how many rows were dropped."""
    if not patient_ids or rows.num_rows == 0:
        return rows, 0
    opted = pc.fill_null(pc.is_in(rows["patient_id"], pa.array(sorted(patient_ids))), False)
    return rows.filter(pc.invert(opted)), int(pc.sum(opted).as_py() or 0)


@dataclass(frozen=True)
class CohortPreview:
    """What a cohort resolves to right now: counts only, never identifiers."""

    patients: int
    studies: int
    series: int
    instances: int
    bytes: int
    modalities: dict[str, int] = field(default_factory=dict)
    burned_in_risk: int = 0
    opted_out_excluded: int = 0
    # Objects the catalog read with a warning, per reason code (big_endian, deflated, ...).
    read_with_warnings: dict[str, int] = field(default_factory=dict)
    # Objects the export will quarantine whatever happens (no SOP Instance UID).
    unexportable: int = 0
    # k-anonymity under the request's options and the floor (``FloorDecision.to_dict``): counts only.
    risk: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        mods = ", ".join(f"{m} {n}" for m, n in self.modalities.items()) or "none"
        line = (
            f"{self.patients} patients, {self.studies} studies, {self.series} series, "
            f"{self.instances} instances, {self.bytes} bytes; modalities: {mods}; "
            f"burned-in risk: {self.burned_in_risk}; opted-out instances excluded: {self.opted_out_excluded}"
        )
        if self.read_with_warnings:
            warned = ", ".join(f"{code} {n}" for code, n in self.read_with_warnings.items())
            line += f"; read with warnings: {warned}; quarantined at export for certain: {self.unexportable}"
        if self.risk is not None:
            line += f"; {risk_line(self.risk)}"
        return line


def risk_line(risk: dict[str, Any]) -> str:
    """One line of a ``FloorDecision.to_dict()``: k before and after, what was applied, the floor."""
    applied = ", ".join(risk["generalizations"]) or "none"
    floor = "off (min_k 1)" if risk["floor_off"] else f"min_k {risk['min_k']}"
    line = f"k = {risk['before']['k']} before, {risk['after']['k']} after generalizations ({applied}); floor {floor}"
    return line + (f"; refused: {risk['refusal']}" if risk["refusal"] else "")


def burned_in_risk_mask(rows: pa.Table) -> pa.ChunkedArray:
    risky = pa.array(cohort_schema()["burned_in_risk"]["modalities_when_absent"])
    flag = pc.utf8_upper(pc.utf8_trim_whitespace(rows["burned_in_annotation"]))
    yes = pc.fill_null(pc.equal(flag, "YES"), False)
    absent_risky = pc.and_(pc.is_null(flag), pc.fill_null(pc.is_in(rows["modality"], risky), False))
    return pc.or_(yes, absent_risky)


def preview_of(rows: pa.Table, opted_out_excluded: int = 0) -> CohortPreview:
    def distinct(column: str) -> int:
        return len(pc.drop_null(pc.unique(rows[column])))

    modalities: dict[str, int] = {}
    if rows.num_rows:
        counts = rows.group_by("modality").aggregate([("key", "count")])
        for mod, n in zip(counts["modality"].to_pylist(), counts["key_count"].to_pylist(), strict=True):
            modalities[mod or "(none)"] = n
    return CohortPreview(
        patients=distinct("patient_id"),
        studies=distinct("study_instance_uid"),
        series=distinct("series_instance_uid"),
        instances=rows.num_rows,
        bytes=int(pc.sum(rows["size"]).as_py() or 0) if rows.num_rows else 0,
        modalities=dict(sorted(modalities.items())),
        burned_in_risk=int(pc.sum(burned_in_risk_mask(rows)).as_py() or 0) if rows.num_rows else 0,
        opted_out_excluded=opted_out_excluded,
        read_with_warnings=_warning_counts(rows),
        unexportable=int(pc.sum(pc.is_null(rows["sop_instance_uid"])).as_py() or 0) if rows.num_rows else 0,
    )


def _warning_counts(rows: pa.Table) -> dict[str, int]:
    """Rows read with a warning, per reason code (the part of ``parse_error`` before ':')."""
    warned = rows.filter(pc.equal(rows["parse_status"], "warning")).column("parse_error").to_pylist()
    return dict(sorted(Counter(str(reason or "unknown").split(":", 1)[0] for reason in warned).items()))
