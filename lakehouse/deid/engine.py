"""De-identify one DICOM object: parse → burned-in triage/pixel cleaning → header profile →
residual-PHI scan → Part 10 bytes with rebuilt file meta.

Pure and picklable: ``deidentify(source, settings)`` depends only on its arguments and the
versioned tables in ``schemas/deid``; it never raises for a bad object, it quarantines it:
``unparseable``, ``truncated`` or ``bad_length`` (``lakehouse.dicom.integrity``: what pydicom
read is not the whole object), ``missing_sop_uids``, ``processing_error`` (anything that
raised), or a reason of the pixel or header stage.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from lakehouse.deid import generalize
from lakehouse.deid.actions import ProfileActions, date_mode
from lakehouse.deid.options import option_columns
from lakehouse.deid.profile import resolved_profile
from lakehouse.deid.pseudonyms import date_offset_days, pseudonymize_id
from lakehouse.deid.record import record_method
from lakehouse.dicom.elements import tag_text
from lakehouse.dicom.integrity import structural_problem
from lakehouse.dicom.part10 import rebuild_file_meta, transfer_syntax_of, write_part10
from lakehouse.dicom.quiet import quiet_pydicom

Outcome = Literal["deidentified", "quarantined"]


@dataclass(frozen=True)
class DeidSettings:
    """What a de-identification run needs; the key never shows in repr."""

    project: str
    key: bytes = field(repr=False)
    options: frozenset[str] = frozenset()
    mask_rules_path: str | None = None
    # Steps of ``generalize`` the run's k-anonymity floor asks for, applied after the profile.
    generalizations: tuple[str, ...] = ()


@dataclass
class DeidResult:
    outcome: Outcome
    data: bytes | None = None
    dataset: Dataset | None = None
    reason: str | None = None
    tag_path: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    uid_map: dict[str, str] = field(default_factory=dict)
    pseudo_patient_id: str | None = None
    source_identifiers: frozenset[str] = frozenset()  # names, IDs, replaced UIDs (no dates)


def deidentify(source: bytes | Dataset, settings: DeidSettings) -> DeidResult:
    """De-identify one object (bytes of a Part 10 file or a dataset, which is not modified).

    pydicom's warnings and log records quote the offending value (``Invalid value for VR UI:
    '<value>'``), which may be PHI, so they are silenced here rather than reaching stderr or a
    log (``lakehouse.dicom.quiet``)."""
    with quiet_pydicom():
        return _deidentify_quietly(source, settings)


def _deidentify_quietly(source: bytes | Dataset, settings: DeidSettings) -> DeidResult:
    report: dict[str, Any] = {"options": sorted(settings.options)}
    try:
        ds = _parse(source)
        problem = structural_problem(source, ds) if isinstance(source, bytes) and ds is not None else None
        if problem is not None:  # a cut file or a lying length: what pydicom read is not the object
            return DeidResult("quarantined", reason=problem, report=report)
        if ds is None or len(ds) == 0:
            return DeidResult("quarantined", reason="unparseable", report=report)
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            return DeidResult("quarantined", reason="missing_sop_uids", report=report)
        return _deidentify(ds, settings, report)
    except Exception as exc:  # noqa: BLE001 - a malformed value deep in a real-world file: fail closed
        report["error"] = type(exc).__name__
        return DeidResult("quarantined", reason="processing_error", report=report)


def _parse(source: bytes | Dataset) -> Dataset | None:
    if isinstance(source, Dataset):
        return copy.deepcopy(source)
    for force in (False, True):
        try:
            ds = pydicom.dcmread(io.BytesIO(source), force=force)
            # A forced read (no preamble/meta) only counts if it found a SOP Instance UID.
            return ds if not force or "SOPInstanceUID" in ds else None
        except InvalidDicomError:
            continue
        except Exception:  # noqa: BLE001 - any read failure means unparseable
            return None
    return None


def _deidentify(ds: Dataset, settings: DeidSettings, report: dict[str, Any]) -> DeidResult:
    pixels = _pixel_step(ds, settings)
    if isinstance(pixels, DeidResult):
        pixels.report.update(report)
        return pixels
    report["pixels"] = pixels

    options = settings.options
    profile = resolved_profile(option_columns(options))
    pseudo_patient = pseudonymize_id(_patient_identity(ds), settings.key, "patient")
    dates = date_mode(options)
    actions = ProfileActions(
        profile=profile,
        key=settings.key,
        options=options,
        date_offset=date_offset_days(pseudo_patient, settings.key) if dates == "modified" else 0,
    )
    source_ts = transfer_syntax_of(ds)
    actions.walk(ds)
    generalize.apply(ds, settings.generalizations)
    scanner = actions.finish()
    record_method(ds, options, profile.edition, dates, settings.generalizations)
    report.update(profile_edition=profile.edition, actions=dict(sorted(actions.counts.items())))
    common: dict[str, Any] = {
        "report": report,
        "uid_map": dict(actions.uid_map),
        "pseudo_patient_id": pseudo_patient,
        "source_identifiers": actions.identifiers.strings(),
    }
    hit = scanner.first_hit(ds)
    if hit is None and actions.safe_private is not None:  # kept private binary values
        hit = next((tag_text(tag) for tag, text in actions.safe_private.binary_values()
                    if scanner.hit("UN", text)), None)
    if hit is not None:
        return DeidResult("quarantined", reason="residual_phi", tag_path=hit, **common)
    rebuild_file_meta(ds, source_ts)
    return DeidResult("deidentified", data=write_part10(ds), dataset=ds, **common)


def _patient_identity(ds: Dataset) -> str:
    return patient_identity(
        str(ds.get("PatientID", "") or ""), str(ds.get("PatientName", "") or ""),
        str(ds.get("PatientBirthDate", "")), str(ds.get("StudyInstanceUID", "")),
    )


def patient_identity(patient_id: str, name: str, birth_date: str, study_uid: str) -> str:
    """What the pseudo patient is derived from: Patient ID, else name + birth date, else the study."""
    if patient_id.strip():
        return patient_id.strip()  # so the pseudo patient ID equals the Patient ID token
    if name.strip():
        return f"name:{name.strip()}|{birth_date}"
    return f"study:{study_uid}"


def _pixel_step(ds: Dataset, settings: DeidSettings) -> str | DeidResult:
    """Burned-in triage before any header action (mask rules key on manufacturer and model)."""
    try:
        from lakehouse.deid import pixels
    except ImportError:
        return DeidResult("quarantined", reason="burned_in_check_unavailable")
    if not pixels.burned_in_risk(ds):
        return "unchanged"
    if "clean-pixel-data" not in settings.options:
        return DeidResult("quarantined", reason="burned_in_risk")
    try:
        return pixels.clean_pixel_data(ds, settings.mask_rules_path)
    except pixels.PixelCleaningError as exc:
        code = getattr(exc, "code", None) or "unknown"
        return DeidResult("quarantined", reason="pixel_uncleanable", report={"pixel_error": str(code)})

