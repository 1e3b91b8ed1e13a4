"""The k-anonymity of a dataset version over the quasi-identifiers its members' research rows
carry (``lakehouse.deid.risk``), against ``[policy] min_k``.

A dataset does not generalize: its DICOM files are byte copies of research objects, checksummed
and traced to them. Generalization belongs to the export (``export.risk``); a selection whose
k falls below the floor is refused, naming the attribute and the class count.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.datasets.selection import Sources
from lakehouse.deid.risk import FloorDecision, meet_floor, quasi_identifiers, study_records

STUDY_KEYWORDS = ("PatientSex", "PatientAge", "PatientSize", "PatientWeight", "PatientBirthDate", "StudyDate")
SERIES_KEYWORDS = ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName")


Member = tuple[str, str, str, list[str]]  # pseudonymous patient, study UID, series UID, SOP Instance UIDs


def series_values(sources: Sources, members: Iterable[Member]) -> dict[str, dict[str, str | None]]:
    """Each member series' quasi-identifier values by keyword (its study's, its own, and those of
    its first instance's top level), read once, before anything is rendered."""
    rows = list(members)
    studies = _by(sources.read("studies", columns=["StudyInstanceUID", *STUDY_KEYWORDS],
                               filters=[("StudyInstanceUID", "in", {m[1] for m in rows})]), "StudyInstanceUID")
    series = _by(sources.read("series", columns=["SeriesInstanceUID", *SERIES_KEYWORDS],
                              filters=[("SeriesInstanceUID", "in", {m[2] for m in rows})]), "SeriesInstanceUID")
    extra = [k for qi in quasi_identifiers() for k in qi.keywords if k not in STUDY_KEYWORDS + SERIES_KEYWORDS]
    attributes = _attribute_values(sources, extra, {sops[0] for *_, sops in rows if sops})
    values: dict[str, dict[str, str | None]] = {}
    for _, study, series_id, sops in rows:
        found = {k: _text(studies.get(study, {}).get(k)) for k in STUDY_KEYWORDS}
        found |= {k: _text(series.get(series_id, {}).get(k)) for k in SERIES_KEYWORDS}
        found |= {k: attributes.get((sops[0], k)) if sops else None for k in extra}
        values[series_id] = found
    return values


def version_risk(settings: Settings, values: dict[str, dict[str, str | None]], members: Iterable[Member]
                 ) -> FloorDecision:
    """k over ``members`` with the quasi-identifiers that carry a value (``series_values``)."""
    rows = list(members)
    qis = quasi_identifiers()
    table: dict[str, list[str | None]] = {
        "patient": [m[0] for m in rows], "study": [m[1] for m in rows],
        **{k: [values[m[2]].get(k) for m in rows] for qi in qis for k in qi.keywords},
    }
    records = study_records(pa.table(table, schema=pa.schema([(c, pa.string()) for c in table])), qis)
    present = [qi for qi in qis if records.has_values(qi.name)]
    return meet_floor(records.only([q.name for q in present]), present, settings.policy.min_k, may_generalize=False)


def _by(table: pa.Table, key: str) -> dict[str, dict[str, object]]:
    return {row[key]: row for row in table.to_pylist()}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _attribute_values(sources: Sources, keywords: list[str], sops: set[str]) -> dict[tuple[str, str], str]:
    """Top-level values of ``keywords`` in the first instance of each series (they are series-
    or study-level attributes), read with both filters pushed down."""
    if not keywords or not sops:
        return {}
    rows = sources.read(
        "attributes", columns=["SOPInstanceUID", "keyword", "value_text", "depth"],
        filters=[("keyword", "in", set(keywords)), ("SOPInstanceUID", "in", sops)],
    )
    return {
        (r["SOPInstanceUID"], r["keyword"]): r["value_text"] or ""
        for r in rows.to_pylist() if r["depth"] == 0
    }

