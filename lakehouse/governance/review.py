"""What a governance officer reads before signing a request: purpose, protocol, requester, the
cohort criteria in words, what the cohort resolves to in the catalog (by modality, body part,
study year and site), the de-identification profile and what each chosen option keeps, burned-in
risk, opted-out exclusions, overlap with the project's earlier approved requests, the objects
the catalog could not parse (no criterion can select them, so they are silently left out), and
the cohort's k-anonymity against ``[policy] min_k`` with the generalizations the export applies.

Every count goes through small-cell suppression: 1 to 4 is shown as ``<5`` (0 names nobody and
stays 0), and within a breakdown a second cell is hidden (``≥5``) when one small cell could be
recomputed from the total, so no review narrows to an individual. The ``Review`` holds the suppressed cells only,
never the raw counts, so nothing that prints it can leak them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse import lake, resources
from lakehouse.config import Settings
from lakehouse.deid.options import option_catalog
from lakehouse.deid.risk import FloorDecision
from lakehouse.errors import Refused
from lakehouse.governance import cohort as cohorts
from lakehouse.governance.cost import CostReview, cost_review, restore_days
from lakehouse.governance.manifest import read_manifest
from lakehouse.governance.optout import opted_out_patient_ids
from lakehouse.governance.requests import Request, list_requests
from lakehouse.governance.risk import cohort_risk

__all__ = ["Breakdown", "OptionNote", "Overlap", "Review", "RiskView", "build_review", "cell", "column_cells"]

Cell = str


@cache
def _texts() -> dict[str, Any]:
    data: dict[str, Any] = resources.read_json("governance", "review.json")
    return data


def cell(count: int) -> Cell:
    """A count as a review shows it: ``<5`` for 1-4 (small-cell suppression), else the number."""
    return f"<{_texts()['small_cell_threshold']}" if 0 < count < _texts()["small_cell_threshold"] else str(count)


@dataclass(frozen=True)
class Breakdown:
    """Studies and instances per value of one attribute (``(none)`` when it is empty)."""

    attribute: str
    rows: list[tuple[str, Cell, Cell]]  # (value, studies, instances)


@dataclass(frozen=True)
class OptionNote:
    name: str
    meaning: str  # the PS3.16 CID 7050 code meaning
    keeps: str


@dataclass(frozen=True)
class Overlap:
    """How much of this cohort an earlier approved request of the project already covers."""

    request_id: str
    status: str
    title: str
    instances: Cell
    patients: Cell


@dataclass(frozen=True)
class RiskView:
    """k-anonymity as the reviewer sees it: k itself (the measure under review), every count of
    patients or classes small-cell suppressed, attribute names, never a value."""

    min_k: int
    floor_off: bool
    quasi_identifiers: list[str]
    k_before: int
    k_after: int
    patients_below_before: Cell
    patients_below_after: Cell
    classes_below_after: Cell
    most_at_risk_attribute: str | None
    generalizations: list[str]
    refusal: str | None
    years_unshifted: bool

    @classmethod
    def of(cls, decision: FloorDecision) -> RiskView:
        before, after = decision.before, decision.after
        return cls(
            min_k=decision.min_k,
            floor_off=decision.floor_off,
            quasi_identifiers=before.quasi_identifiers,
            k_before=before.k,
            k_after=after.k,
            patients_below_before=cell(before.patients_below),
            patients_below_after=cell(after.patients_below),
            classes_below_after=cell(after.classes_below),
            most_at_risk_attribute=(after if after.patients_below else before).most_at_risk_attribute,
            generalizations=list(decision.generalizations),
            refusal=decision.refusal,
            years_unshifted=decision.years_unshifted,
        )

    def lines(self) -> list[str]:
        floor = "off (min_k = 1): measured, not enforced" if self.floor_off else f"min_k {self.min_k}"
        lines = [
            f"  re-identification risk (k-anonymity, floor {floor}):",
            f"    quasi-identifiers kept: {', '.join(self.quasi_identifiers) or 'none'}",
            f"    k = {self.k_before} before generalization; patients below the floor: {self.patients_below_before}",
        ]
        if self.most_at_risk_attribute:
            lines.append(f"    attribute that singles out most: {self.most_at_risk_attribute}")
        if self.generalizations:
            lines.append(f"    generalizations the export applies: {', '.join(self.generalizations)}")
            lines.append(f"    k = {self.k_after} after; patients below the floor: {self.patients_below_after}")
        if self.refusal:
            lines.append(f"    the export will be refused: {self.refusal}")
        if self.years_unshifted:
            lines.append("    (study years measured before the date shift; the export measures the shifted ones)")
        return lines


@dataclass(frozen=True)
class Review:
    request_id: str
    status: str
    project: str
    title: str
    purpose: str
    protocol: str
    requester: str
    criteria: list[str]
    catalog_version: int
    totals: dict[str, Cell]  # patients, studies, series, instances
    bytes: int
    breakdowns: list[Breakdown]
    profile: str
    options: list[OptionNote]
    burned_in_risk: Cell
    opted_out_excluded: Cell
    overlaps: list[Overlap]
    unparseable: dict[str, Cell]  # catalog-wide, per reason code
    unparseable_in_cohort_studies: Cell
    read_with_warnings: dict[str, Cell] = field(default_factory=dict)
    unexportable: Cell = "0"  # no SOP Instance UID: quarantined at export whatever happens
    cost: CostReview | None = None  # per storage class: objects, bytes, reads, restores (``cost``)
    risk: RiskView | None = None  # k-anonymity against [policy] min_k (``RiskView``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_review(settings: Settings, request: Request) -> Review:
    """The review of ``request`` against the current catalog (the version it would freeze now)."""
    snapshot = lake.table(settings, "catalog").open()
    if snapshot is None:
        raise Refused("there is no catalog yet; run `lakehouse catalog sync`")
    selected = cohorts.select(cohorts.read_catalog(settings, at=snapshot), request.cohort)
    rows, opted_out = cohorts.exclude_patients(selected, opted_out_patient_ids(settings))
    preview = cohorts.preview_of(rows, opted_out)
    unparseable, in_studies = _unparseable(snapshot, rows)
    return Review(
        request_id=request.id,
        status=request.status,
        project=request.project,
        title=request.title,
        purpose=request.purpose,
        protocol=request.protocol,
        requester=request.requester,
        criteria=criteria_in_words(request.cohort),
        catalog_version=snapshot.version,
        totals={
            "patients": cell(preview.patients),
            "studies": cell(preview.studies),
            "series": cell(preview.series),
            "instances": cell(preview.instances),
        },
        bytes=preview.bytes,
        breakdowns=[
            _breakdown(rows, "modality", rows["modality"] if rows.num_rows else None),
            _breakdown(rows, "body part", rows["body_part_examined"] if rows.num_rows else None),
            _breakdown(rows, "study year", _years(rows)),
            # the site is the institution that acquired the study, as its objects name it
            _breakdown(rows, "site", rows["institution_name"] if rows.num_rows else None),
        ],
        profile=_texts()["profile"],
        options=option_notes(request.options),
        burned_in_risk=cell(preview.burned_in_risk),
        opted_out_excluded=cell(preview.opted_out_excluded),
        overlaps=_overlaps(settings, request, rows),
        unparseable=unparseable,
        unparseable_in_cohort_studies=cell(in_studies),
        read_with_warnings={code: cell(n) for code, n in preview.read_with_warnings.items()},
        unexportable=cell(preview.unexportable),
        risk=RiskView.of(cohort_risk(settings, rows, request.options)),
        cost=cost_review(settings, rows, days=_restore_days(settings, request), suppress=column_cells),
    )


def _restore_days(settings: Settings, request: Request) -> int:
    return restore_days(request.expires, datetime.now(UTC).date(), settings.policy.max_validity_days)


def option_notes(options: list[str]) -> list[OptionNote]:
    specs = option_catalog().options
    keeps: dict[str, str] = _texts()["keeps"]
    return [OptionNote(name, specs[name].meaning, keeps[name]) for name in sorted(options)]


# --- criteria in words --------------------------------------------------------------------


def criteria_in_words(cohort: dict[str, Any]) -> list[str]:
    """One sentence per criterion; identifier lists only as how many values they hold."""
    if not cohort:
        return ["every readable object in the catalog (no criteria)"]
    words = []
    start, end = cohort.get("study_date_from"), cohort.get("study_date_to")
    for name, value in cohort.items():
        if name == "study_date_to" and start:
            continue
        words.append(_sentence(name, value, end))
    return words


def _sentence(name: str, value: Any, end: str | None) -> str:
    if name == "modalities":
        return f"modality is {_either(value)}"
    if name == "body_parts":
        return f"body part examined is {_either(value)}"
    if name == "study_date_from":
        return f"study date from {value} to {end}" if end else f"study date on or after {value}"
    if name == "study_date_to":
        return f"study date on or before {value}"
    if name == "sop_classes":
        return f"SOP class is {_either(value)}"
    if name == "description_contains":
        quoted = [f'"{text}"' for text in value]
        return f"study or series description contains {_either(quoted)} (any case)"
    if name == "accession_numbers":
        return f"accession number is one of {len(value)} listed (identifiers, not shown)"
    if name == "patient_ids":
        return f"patient is one of {len(value)} listed (identifiers, not shown)"
    if name == "max_studies":
        return f"at most {value} studies, earliest study date first"
    return f"{name}: {value}"  # a criterion added to cohort.json before its words were


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


# --- counts -------------------------------------------------------------------------------


def _years(rows: pa.Table) -> pa.Array | None:
    if not rows.num_rows:
        return None
    return pc.cast(pc.year(rows["study_date"]), pa.string())


def _breakdown(rows: pa.Table, attribute: str, values: Any) -> Breakdown:
    if values is None:
        return Breakdown(attribute, [])
    keyed = pa.table({"value": pc.fill_null(values, "(none)"), "study": rows["study_instance_uid"]})
    grouped = keyed.group_by("value").aggregate([("study", "count_distinct"), ("value", "count")])
    found = sorted(
        zip(grouped["value"].to_pylist(), grouped["study_count_distinct"].to_pylist(), grouped["value_count"].to_pylist(), strict=True)
    )
    studies = column_cells([studies for _, studies, _ in found])
    instances = column_cells([n for _, _, n in found])
    return Breakdown(attribute, list(zip([str(v or "(none)") for v, _, _ in found], studies, instances, strict=True)))


def column_cells(counts: list[int]) -> list[Cell]:
    """One column of a breakdown, suppressed. When exactly one cell is small, the total minus
    the others would give it back, so the next smallest cell is hidden too, as ``≥5``
    (complementary suppression: true, but no longer exact)."""
    cells = [cell(n) for n in counts]
    threshold = _texts()["small_cell_threshold"]
    small = [i for i, n in enumerate(counts) if 0 < n < threshold]
    others = sorted((n, i) for i, n in enumerate(counts) if n >= threshold)
    if len(small) == 1 and others:
        cells[others[0][1]] = f"≥{threshold}"
    return cells


def _unparseable(snapshot: lake.Snapshot, rows: pa.Table) -> tuple[dict[str, Cell], int]:
    """Live objects the catalog could not parse, per reason code, and how many of them sit in
    the cohort's studies (when the catalog could still read their Study Instance UID)."""
    broken = snapshot.read(
        columns=["parse_status", "parse_error", "study_instance_uid"],
        filters=[("parse_status", "not in", cohorts.READABLE), ("deleted", "=", False)],
    )
    reasons = Counter(
        str(error or status).split(":", 1)[0]
        for status, error in zip(broken["parse_status"].to_pylist(), broken["parse_error"].to_pylist(), strict=True)
    )
    studies = pc.drop_null(pc.unique(rows["study_instance_uid"])) if rows.num_rows else pa.array([], pa.string())
    inside = int(pc.sum(pc.fill_null(pc.is_in(broken["study_instance_uid"], studies), False)).as_py() or 0)
    return {reason: cell(n) for reason, n in sorted(reasons.items())}, inside


def _overlaps(settings: Settings, request: Request, rows: pa.Table) -> list[Overlap]:
    """Earlier requests of the project with a frozen manifest, and what of this cohort they hold."""
    uids = set(rows["sop_instance_uid"].to_pylist()) - {None, ""} if rows.num_rows else set()
    found = []
    for earlier in list_requests(settings, project=request.project):
        if earlier.id == request.id or earlier.manifest_sha256 is None:
            continue
        try:
            entries = read_manifest(settings, earlier.id, earlier.manifest_sha256)
        except Refused:
            found.append(Overlap(earlier.id, "manifest does not match its hash", earlier.title, "?", "?"))
            continue
        shared = [e for e in entries if e.sop_instance_uid in uids]
        patients = {e.patient_id for e in shared if e.patient_id}
        found.append(Overlap(earlier.id, earlier.status, earlier.title, cell(len(shared)), cell(len(patients))))
    return found
