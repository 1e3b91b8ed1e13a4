"""``dataset build``: selection -> members -> splits -> files -> checks -> publish.

The version folder is written before it is published; until the registry's ``published``
event lands nothing lists it and ``pull`` refuses it, and a build that fails removes what it
wrote and records the version ``failed`` (a killed one stays ``reserved``; ``dataset
withdraw`` clears it). Files hold only what the research zone holds (de-identified objects
and their pseudonymous UIDs); every text file is scanned for the members' source identifiers
(from the restricted lineage) before publishing, and an object whose bytes differ from the
research table's SHA-256 stops the build.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pydicom

import lakehouse
from lakehouse import governance, lake, lineage
from lakehouse.config import Settings
from lakehouse.datasets import layout, registry
from lakehouse.datasets.card import build_card
from lakehouse.datasets.manifests import MANIFEST_FORMAT, build_manifests
from lakehouse.datasets.model import (
    FORMATS,
    MANIFESTS,
    UNITS,
    Exclusion,
    Instance,
    Member,
    NiftiFile,
    PngImage,
    SourceRequest,
    Unconvertible,
    VersionContents,
)
from lakehouse.datasets.nifti import label_map_nifti, series_to_nifti
from lakehouse.datasets.png import object_to_pngs
from lakehouse.datasets.risk import series_values, version_risk
from lakehouse.datasets.seg import read_seg
from lakehouse.datasets.selection import Selection, Sources, selected_series
from lakehouse.datasets.splits import Assignment, assign, patient_strata
from lakehouse.datasets.versions import clear_abandoned
from lakehouse.datasets.windows import parse_window
from lakehouse.deid.risk import FloorDecision
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.errors import LakehouseError, Refused
from lakehouse.quality.forbidden import ForbiddenMatcher
from lakehouse.storage import ObjectStore, open_zone

Advance = Callable[[int], None]
_INSTANCE_COLUMNS = [
    "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID", "Modality", "InstanceNumber",
    "header_json", "object_key", "object_sha256", "request_id", "deid_profile",
]
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass(frozen=True)
class BuildOptions:
    project: str
    name: str
    selection: Selection
    pins: dict[str, int] | None = None
    unit: str = "series"
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    stratify: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("dicom",)
    manifests: tuple[str, ...] = ()
    window: str = "dicom"
    png_bits: int = 8
    labels: str | None = None  # "final": each series' newest final annotation goes in too

    def check(self) -> None:
        registry.check_name(self.name)
        problems = [f"--unit {self.unit}" for _ in [0] if self.unit not in UNITS]
        problems += [f"--format {f}" for f in self.formats if f not in FORMATS]
        problems += [f"--manifest {m}" for m in self.manifests if m not in MANIFESTS]
        if problems:
            raise registry.DatasetError(f"unknown {', '.join(problems)}")
        if not self.formats:
            raise registry.DatasetError("--format names no format")
        for manifest in self.manifests:
            if MANIFEST_FORMAT[manifest] not in self.formats:
                raise registry.DatasetError(f"the {manifest} manifest needs --format {MANIFEST_FORMAT[manifest]}")
        if self.labels not in (None, "final"):
            raise registry.DatasetError("--labels takes final")
        if self.labels and not {"nifti", "dicom"} & set(self.formats):
            raise registry.DatasetError("--labels needs --format nifti (label maps) or dicom (SEG objects)")
        if self.png_bits not in (8, 16):
            raise registry.DatasetError("--png-bits is 8 or 16")
        try:
            parse_window(self.window)
        except ValueError as exc:
            raise registry.DatasetError(f"--window: {exc}") from None


@dataclass(frozen=True)
class BuildResult:
    version: registry.Version
    contents: VersionContents
    location: str  # URI of the version folder
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.version.to_dict(), "location": self.location, "files": self.files, "bytes": self.bytes}


@dataclass
class _Planned:
    """A member before its files exist."""

    member_id: str
    patient_id: str
    study_instance_uid: str
    series: dict[str, list[dict[str, Any]]]  # SeriesInstanceUID -> its instance rows
    series_rows: list[dict[str, Any]]
    split: str = ""


@lineage.emits(lineage.DATASET_BUILD)
@quiet_pydicom()  # pydicom's warnings and log records quote values
def build_dataset(settings: Settings, options: BuildOptions, *, user: str, advance: Advance | None = None) -> BuildResult:
    """Build, check and publish the next version of ``options.name``; see the module docstring."""
    governance.require_role(settings, user, "curators")
    options.check()
    project = options.project
    sources = Sources.open(settings, project, options.pins)
    chosen = selected_series(sources, options.selection)
    if not chosen:
        raise Refused("the selection matches no series")
    planned, exclusions, requests = _plan(settings, sources, chosen, options.unit)
    if not planned:
        raise Refused(f"no selected series can be used ({len(exclusions)} excluded: their requests are not approved)")
    planned_ids = {r["SOPInstanceUID"] for p in planned for rows in p.series.values() for r in rows}
    _still_valid(settings, project, planned_ids, set(requests))  # a pinned version may predate a purge
    _assign_splits(settings, options, planned, sources)
    _refuse_patient_leaks(planned)
    values = series_values(sources, _risk_members(planned))
    _refuse_below_floor(settings, options.name, values, _risk_members(planned))
    clear_abandoned(settings, project, user=user)

    build_id = secrets.token_hex(8)
    version = registry.reserve(settings, project, options.name, build_id=build_id, user=user)
    store = open_zone(settings, "datasets")
    prefix = layout.version_prefix(project, options.name, version)
    writer = _Writer(store, prefix)
    try:
        sidecars: dict[str, dict[str, Any]] = {}
        members = _render_all(settings, options, planned, writer, exclusions, advance, sidecars)
        labels: dict[str, int] = {}
        if options.labels:
            members, labels = _add_labels(settings, project, members, sidecars, writer, options.formats)
        if not members:
            raise Refused("no member could be rendered in the requested formats (see exclusions)")
        _refuse_pixel_leaks(members)
        risk = _refuse_below_floor(settings, options.name, values, _risk_members(members))  # what is published
        contents = VersionContents(
            project=project, name=options.name, unit=options.unit, splits=dict(options.splits),
            formats=options.formats, manifests=options.manifests, window=options.window,
            selection_kind=options.selection.kind, selection_text=options.selection.text,
            selection_sha256=options.selection.sha256, sources=dict(sources.versions),
            requests=_requests_used(members, planned, requests),
            members=tuple(members), exclusions=tuple(sorted(exclusions, key=_exclusion_order)),
            stratify=options.stratify, frozen=options.frozen, labels=labels,
            tool={"name": "lakehouse", "version": lakehouse.__version__},
        )
        for path, data in sorted({**build_manifests(contents), **build_card(contents)}.items()):
            writer.put(path, data)
        _refuse_identifiers(settings, writer, members)
        checksums = writer.checksums()
        writer.put(layout.CHECKSUMS, checksums, listed=False)
        _record_instances(settings, project, options.name, version, members, planned)
        head = governance.current_head(settings)
        details = {**_details(contents, version, options, hashlib.sha256(checksums).hexdigest(), writer, head),
                   "risk": risk.to_dict()}
        stamped = {**details, "built_by": user, "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
        writer.put(layout.VERSION_FILE, json.dumps(stamped, indent=2, sort_keys=True).encode(), listed=False)
        instance_ids = {i.sop_instance_uid for m in members for i in m.instances}
        registry.publish(
            settings, project, options.name, version, build_id=build_id, user=user, details=details,
            still_valid=lambda: _still_valid(settings, project, instance_ids, set(contents_requests(contents))),
        )
    except BaseException as exc:
        writer.remove_all()
        reason = f"build failed: {type(exc).__name__}: {exc}" if isinstance(exc, LakehouseError) else (
            f"build failed: {type(exc).__name__}")
        registry.mark(settings, project, options.name, version, event="failed", user=user, reason=reason[:300])
        raise
    governance.append_audit(
        settings, user=user, action="dataset.build",
        details={"project": project, "dataset": f"{options.name}@v{version}", "members": len(members),
                 "instances": len(instance_ids), "files": writer.count, "checksums_sha256": details["checksums_sha256"],
                 "selection_sha256": options.selection.sha256, **risk.audit_fields()},
    )
    published = registry.get_version(settings, project, options.name, version)
    return BuildResult(published, contents, settings.zone("datasets").join(prefix), writer.count, writer.total)


def contents_requests(contents: VersionContents) -> list[str]:
    return [r.request_id for r in contents.requests]


def _requests_used(members: list[Member], planned: list[_Planned], requests: dict[str, SourceRequest]
                   ) -> tuple[SourceRequest, ...]:
    kept = {m.member_id for m in members}
    used = {r["request_id"] for p in planned if p.member_id in kept for rows in p.series.values() for r in rows}
    return tuple(requests[r] for r in sorted(used))


# --- planning ---------------------------------------------------------------------------------


def _plan(
    settings: Settings, sources: Sources, chosen: list[str], unit: str
) -> tuple[list[_Planned], list[Exclusion], dict[str, SourceRequest]]:
    """Members of the selected series whose requests are still approved and unexpired."""
    wanted = set(chosen)
    series_rows = sources.read("series", filters=[("SeriesInstanceUID", "in", wanted)]).to_pylist()
    study_ids = {r["StudyInstanceUID"] for r in series_rows}
    studies = {r["StudyInstanceUID"]: r for r in sources.read(
        "studies", columns=["StudyInstanceUID", "PatientID"], filters=[("StudyInstanceUID", "in", study_ids)]).to_pylist()}
    instances = sources.read("instances", columns=_INSTANCE_COLUMNS, filters=[("SeriesInstanceUID", "in", wanted)])
    by_series: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in instances.to_pylist():
        by_series[row["SeriesInstanceUID"]].append(row)
    profiles = {r["request_id"]: r["deid_profile"] for rows in by_series.values() for r in rows}
    usable, refused = _usable_requests(settings, set(profiles))
    requests = {rid: SourceRequest(rid, req.protocol, req.purpose, profiles[rid], tuple(req.options))
                for rid, req in usable.items()}
    exclusions: list[Exclusion] = []
    members: dict[str, _Planned] = {}
    for row in sorted(series_rows, key=lambda r: r["SeriesInstanceUID"]):
        series_id = row["SeriesInstanceUID"]
        rows = sorted(by_series.get(series_id, []), key=lambda r: r["SOPInstanceUID"])
        blocked = sorted({r["request_id"] for r in rows} & set(refused))
        if blocked or not rows:
            why = refused[blocked[0]] if blocked else "no instance in the instances table"
            exclusions.append(Exclusion(series_id, series_id, "member", "request_not_usable" if blocked else "no_instances",
                                        why))
            continue
        study = studies.get(row["StudyInstanceUID"])
        if study is None or not study["PatientID"]:
            exclusions.append(Exclusion(series_id, series_id, "member", "no_patient",
                                        "the series' study has no pseudonymous PatientID"))
            continue
        member_id = series_id if unit == "series" else row["StudyInstanceUID"]
        member = members.setdefault(member_id, _Planned(member_id, study["PatientID"], row["StudyInstanceUID"], {}, []))
        member.series[series_id] = rows
        member.series_rows.append(row)
    return list(members.values()), exclusions, requests


def _usable_requests(settings: Settings, request_ids: set[str]) -> tuple[dict[str, governance.Request], dict[str, str]]:
    """Requests still approved and unexpired, their decisions and manifest proved (``may_run``);
    the others with the reason."""
    usable: dict[str, governance.Request] = {}
    refused: dict[str, str] = {}
    for request_id in sorted(request_ids):
        permission = governance.may_run(settings, request_id)
        if permission.allowed and permission.request is not None:
            usable[request_id] = permission.request
        else:
            refused[request_id] = permission.reason or f"request {request_id} is not approved"
    return usable, refused


def _stratum(planned: _Planned, columns: tuple[str, ...], study_rows: dict[str, dict[str, Any]]) -> str:
    if not columns:
        return ""
    parts = []
    for column in columns:
        values = sorted({str(_value(row, study_rows, column)) for row in planned.series_rows})
        parts.append("|".join(values))
    return "/".join(parts)


def _value(series_row: dict[str, Any], study_rows: dict[str, dict[str, Any]], column: str) -> Any:
    if column in series_row:
        return series_row[column]
    return study_rows.get(series_row["StudyInstanceUID"], {}).get(column)


def _assign_splits(settings: Settings, options: BuildOptions, planned: list[_Planned], sources: Sources) -> None:
    """Each member takes its patient's split; new patients are assigned and recorded first."""
    study_ids = {p.study_instance_uid for p in planned}
    study_rows = {r["StudyInstanceUID"]: r for r in sources.read(
        "studies", filters=[("StudyInstanceUID", "in", study_ids)]).to_pylist()}
    known = set(sources.snapshots["series"].dataset().schema.names) | set(
        sources.snapshots["studies"].dataset().schema.names)
    unknown = [c for c in options.stratify if c not in known]
    if unknown:
        raise registry.DatasetError(f"--stratify names columns not in series or studies: {', '.join(unknown)}")
    strata = patient_strata((p.patient_id, _stratum(p, options.stratify, study_rows)) for p in planned)
    table = lake.table(settings, "dataset_splits", project=options.project)
    existing = _assignments(table, set(strata))
    made = assign(strata, existing, options.splits, options.frozen)
    if made:
        rows = [{"PatientID": a.patient_id, "split": a.split, "stratum": a.stratum,
                 "rank": hashlib.sha256(f"split:{a.patient_id}".encode()).hexdigest(),
                 "dataset": options.name} for a in made]
        table.commit_once(table.spec.to_arrow(rows), app_id=f"splits:{secrets.token_hex(8)}", version=1)
        existing = _assignments(table, set(strata))  # a racing build may have placed a patient first
    for member in planned:
        member.split = existing[member.patient_id].split
    stray = {member.split for member in planned} - set(options.splits)
    if stray:
        raise Refused(f"patients are in splits {sorted(stray)} that --split does not name")


def _assignments(table: lake.Table, patients: set[str]) -> dict[str, Assignment]:
    if not patients or not table.exists():
        return {}
    rows = table.read(columns=["PatientID", "split", "stratum"], filters=[("PatientID", "in", patients)]).to_pylist()
    splits: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits[row["PatientID"]].add(row["split"])
    _refuse_leaks("patients", splits.values())  # the table was written around the lake (insert-new never does)
    return {r["PatientID"]: Assignment(r["PatientID"], r["split"], r["stratum"] or "") for r in rows}


def _risk_members(members: Iterable[_Planned | Member]) -> list[tuple[str, str, str, list[str]]]:
    """(patient, study, series, SOP Instance UIDs) of every series of ``members``."""
    rows = []
    for member in members:
        if isinstance(member, Member):
            by_series: defaultdict[str, list[str]] = defaultdict(list)
            for instance in member.instances:
                by_series[instance.series_instance_uid].append(instance.sop_instance_uid)
            series = dict(by_series)
        else:
            series = {s: [r["SOPInstanceUID"] for r in rs] for s, rs in member.series.items()}
        rows += [(member.patient_id, member.study_instance_uid, s, sops) for s, sops in sorted(series.items())]
    return rows


def _refuse_below_floor(settings: Settings, name: str, values: dict[str, dict[str, str | None]],
                        members: list[tuple[str, str, str, list[str]]]) -> FloorDecision:
    decision = version_risk(settings, values, members)
    if decision.refusal:
        raise Refused(f"dataset {name} may not be built: {decision.refusal}")
    return decision


def _refuse_patient_leaks(planned: list[_Planned]) -> None:
    splits: defaultdict[str, set[str]] = defaultdict(set)
    for member in planned:
        splits[member.patient_id].add(member.split)
    _refuse_leaks("patients", splits.values())


def _refuse_pixel_leaks(members: list[Member]) -> None:
    splits: defaultdict[str, set[str]] = defaultdict(set)
    for member in members:
        for instance in member.instances:
            if instance.pixel_sha256:
                splits[instance.pixel_sha256].add(member.split)
    _refuse_leaks("identical pixel contents", splits.values())


def _refuse_leaks(what: str, splits_of_each: Iterable[set[str]]) -> None:
    """Refused when any one thing (a patient, a pixel hash) is in more than one split; names the
    most frequent split pair and how many."""
    pairs = Counter(tuple(sorted(s))[:2] for s in splits_of_each if len(s) > 1)
    if pairs:
        (a, b), count = pairs.most_common(1)[0]
        raise Refused(f"leakage: {sum(pairs.values())} {what} fall in more than one split ({count} in {a} and {b})")


# --- rendering --------------------------------------------------------------------------------


class _Writer:
    """Puts a version's files and keeps their SHA-256 for ``checksums.sha256``."""

    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.sums: dict[str, str] = {}
        self.count = 0
        self.total = 0
        self.texts: dict[str, bytes] = {}

    def put(self, path: str, data: bytes, *, listed: bool = True) -> None:
        self.store.put(self.prefix + path, data)
        self.count += 1
        self.total += len(data)
        if listed:
            self.sums[path] = hashlib.sha256(data).hexdigest()
        if path.endswith((".json", ".md")):
            self.texts[path] = data

    def checksums(self) -> bytes:
        return "".join(f"{digest}  {path}\n" for path, digest in sorted(self.sums.items())).encode()

    def remove_all(self) -> None:
        for info in list(self.store.list(self.prefix)):
            self.store.delete(info.key)


def _render_all(
    settings: Settings, options: BuildOptions, planned: list[_Planned], writer: _Writer,
    exclusions: list[Exclusion], advance: Advance | None, sidecars: dict[str, dict[str, Any]],
) -> list[Member]:
    research = open_zone(settings, "research")
    window = parse_window(options.window)
    members: list[Member] = []
    for plan in sorted(planned, key=lambda p: (p.split, p.patient_id, p.member_id)):
        instances: list[Instance] = []
        niftis: list[NiftiFile] = []
        pngs: list[PngImage] = []
        for series_id, rows in sorted(plan.series.items()):
            datasets = []
            png_failures: Counter[str] = Counter()
            for row in rows:
                data = research.get(row["object_key"])
                if hashlib.sha256(data).hexdigest() != row["object_sha256"]:
                    raise Refused(f"research object of series {series_id} differs from its recorded SHA-256")
                ds = pydicom.dcmread(io.BytesIO(data))
                path = None
                if "dicom" in options.formats:
                    path = layout.dicom_path(plan.split, plan.patient_id, plan.study_instance_uid, series_id,
                                             row["SOPInstanceUID"])
                    writer.put(path, data)
                instances.append(Instance(
                    row["SOPInstanceUID"], series_id, row["StudyInstanceUID"], row["SOPClassUID"], row["Modality"],
                    row["InstanceNumber"], row["header_json"], row["object_sha256"], _pixel_sha256(ds), path))
                if "png" in options.formats:
                    try:
                        pngs += _write_pngs(writer, plan, ds, row, window, options.png_bits)
                    except Unconvertible as exc:
                        png_failures[exc.code] += 1
                if "nifti" in options.formats:
                    datasets.append(ds)
                if advance:
                    advance(1)
            for code, count in sorted(png_failures.items()):
                exclusions.append(Exclusion(plan.member_id, series_id, "png", code,
                                            f"{count} of {len(rows)} objects cannot be drawn as PNG ({code})"))
            if datasets:
                try:
                    niftis.append(_write_nifti(writer, plan, series_id, datasets, sidecars))
                except Unconvertible as exc:
                    exclusions.append(Exclusion(plan.member_id, series_id, "nifti", exc.code, exc.reason))
        if not _has_output(options.formats, instances, niftis, pngs):
            exclusions.append(Exclusion(plan.member_id, None, "member", "no_output",
                                        "nothing of the member could be built in the requested formats"))
            continue
        first = plan.series_rows[0]
        members.append(Member(
            plan.member_id, plan.patient_id, plan.study_instance_uid, plan.split,
            _joined(r["Modality"] for r in plan.series_rows), _joined(r["BodyPartExamined"] for r in plan.series_rows),
            first["Manufacturer"], tuple(instances), tuple(niftis), tuple(pngs)))
    return members


def _has_output(formats: tuple[str, ...], instances: list[Instance], niftis: list[NiftiFile], pngs: list[PngImage]) -> bool:
    return ("dicom" in formats and bool(instances)) or bool(niftis) or bool(pngs)


def _joined(values: Iterable[str | None]) -> str | None:
    found = sorted({v for v in values if v})
    return "\\".join(found) if found else None


def _pixel_sha256(ds: pydicom.Dataset) -> str | None:
    for tag in _PIXEL_TAGS:
        if tag in ds:
            value = ds[tag].value
            if isinstance(value, bytes) and value:
                return hashlib.sha256(value).hexdigest()
    return None


def _write_pngs(writer: _Writer, plan: _Planned, ds: pydicom.Dataset, row: dict[str, Any], window: Any, bits: int) -> list[PngImage]:
    rendered = object_to_pngs(ds, window, bits)
    images = []
    for png in rendered:
        path = layout.png_path(plan.split, plan.patient_id, row["SeriesInstanceUID"], row["SOPInstanceUID"],
                               png.frame, len(rendered))
        writer.put(path, png.data)
        images.append(PngImage(path, row["SOPInstanceUID"], row["SeriesInstanceUID"], png.frame, png.bits,
                               png.window_center, png.window_width, png.rows, png.columns))
    return images


def _write_nifti(writer: _Writer, plan: _Planned, series_id: str, datasets: Sequence[pydicom.Dataset],
                 sidecars: dict[str, dict[str, Any]]) -> NiftiFile:
    result = series_to_nifti(datasets)
    sidecars[series_id] = result.sidecar
    path = layout.nifti_path(plan.split, series_id)
    sidecar = layout.nifti_sidecar_path(plan.split, series_id)
    writer.put(path, result.image)
    writer.put(sidecar, json.dumps(result.sidecar, indent=1, sort_keys=True).encode())
    return NiftiFile(series_id, path, sidecar, tuple(result.shape))


def _add_labels(
    settings: Settings, project: str, members: list[Member], sidecars: dict[str, dict[str, Any]], writer: _Writer,
    formats: tuple[str, ...],
) -> tuple[list[Member], dict[str, int]]:
    """Each series' newest final annotation: a label map beside its NIfTI and the SEG in the DICOM
    layout. Returns the members with their label paths and the labels' names and values."""
    finals = _final_annotations(settings, project, {n.series_instance_uid for m in members for n in m.nifti}
                                | {i.series_instance_uid for m in members for i in m.instances})
    research = open_zone(settings, "research")
    names: dict[str, int] = {}
    updated = []
    for member in members:
        volumes = []
        for nifti in member.nifti:
            row = finals.get(nifti.series_instance_uid)
            if row is None:
                volumes.append(nifti)
                continue
            sidecar = sidecars[nifti.series_instance_uid]
            volume, segments = read_seg(_seg_bytes(research, row), sidecar["slices"], shape=sidecar["shape"])
            path = layout.label_path(member.split, nifti.series_instance_uid)
            writer.put(path, label_map_nifti(volume, sidecar))
            names.update({d.label: d.number for d in segments.values()})
            volumes.append(replace(nifti, label_path=path))
        if "dicom" in formats:
            for uid in member.series_instance_uids:
                row = finals.get(uid)
                if row is not None:
                    writer.put(layout.dicom_path(member.split, member.patient_id, member.study_instance_uid,
                                                 row["SegSeriesInstanceUID"], row["SegSOPInstanceUID"]),
                               _seg_bytes(research, row))
        updated.append(replace(member, nifti=tuple(volumes)))
    return updated, names


def _final_annotations(settings: Settings, project: str, series: set[str]) -> dict[str, dict[str, Any]]:
    table = lake.table(settings, "annotations", project=project)
    if not series or not table.exists():
        return {}
    rows = table.read(filters=[("SeriesInstanceUID", "in", series), ("status", "=", "final")]).to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["created_at"], r["annotation_id"])):
        newest[row["SeriesInstanceUID"]] = row
    return newest


def _seg_bytes(research: ObjectStore, row: dict[str, Any]) -> bytes:
    data = research.get(row["seg_object_key"])
    if hashlib.sha256(data).hexdigest() != row["seg_sha256"]:
        raise Refused(f"annotation {row['annotation_id']}: its SEG differs from the recorded SHA-256")
    return data


# --- checks and records -------------------------------------------------------------------------


def _refuse_identifiers(settings: Settings, writer: _Writer, members: list[Member]) -> None:
    """No source identifier of a member (lineage: source UIDs, Patient ID, object key) in any text file."""
    sops = {i.sop_instance_uid for m in members for i in m.instances}
    lineage = lake.table(settings, "lineage").read(
        columns=["source_patient_id", "source_study_instance_uid", "source_series_instance_uid",
                 "source_sop_instance_uid", "source_key"],
        filters=[("sop_instance_uid", "in", sops)],
    )
    values = {v for column in lineage.columns for v in column.to_pylist() if v}
    matcher = ForbiddenMatcher(values)
    hits = sorted(path for path, data in writer.texts.items() if matcher.found_in(data.decode("utf-8", "replace")))
    if hits:
        raise Refused(f"leak check: {len(hits)} files of the version contain a source identifier; not published")


def _record_instances(settings: Settings, project: str, name: str, version: int, members: list[Member],
                      planned: list[_Planned]) -> None:
    request_of = {r["SOPInstanceUID"]: r["request_id"] for p in planned for rows in p.series.values() for r in rows}
    rows = [
        {"name": name, "version": version, "member_id": m.member_id, "split": m.split, "PatientID": m.patient_id,
         "StudyInstanceUID": i.study_instance_uid, "SeriesInstanceUID": i.series_instance_uid,
         "SOPInstanceUID": i.sop_instance_uid, "request_id": request_of[i.sop_instance_uid],
         "object_sha256": i.object_sha256, "pixel_sha256": i.pixel_sha256}
        for m in members for i in m.instances
    ]
    table = lake.table(settings, "dataset_instances", project=project)
    table.commit_once(table.spec.to_arrow(rows), app_id=f"dataset:{name}/v{version}", version=1)


def _still_valid(settings: Settings, project: str, instance_ids: set[str], request_ids: set[str]) -> None:
    """Right before publishing: every instance still in research, every request still usable."""
    present = lake.table(settings, "instances", project=project).read(
        columns=["SOPInstanceUID"], filters=[("SOPInstanceUID", "in", instance_ids)])
    missing = len(instance_ids) - present.num_rows
    if missing > 0:
        raise Refused(f"{missing} selected instances are no longer in the research zone (purged); not published")
    _, refused = _usable_requests(settings, request_ids)
    if refused:
        first = min(refused)
        raise Refused(f"request {first} is no longer usable: {refused[first]}")


def _details(contents: VersionContents, version: int, options: BuildOptions, checksums_sha256: str,
             writer: _Writer, head: governance.AuditHead | None) -> dict[str, Any]:
    per_split = Counter(m.split for m in contents.members)
    return {
        "project": contents.project, "name": contents.name, "version": version,
        "sources": contents.sources, "selection": {"kind": contents.selection_kind, "text": contents.selection_text,
                                                   "sha256": contents.selection_sha256},
        "options": {"unit": options.unit, "splits": options.splits, "stratify": list(options.stratify),
                    "freeze": list(options.frozen), "formats": list(options.formats),
                    "manifests": list(options.manifests), "window": options.window, "png_bits": options.png_bits},
        "requests": contents_requests(contents),
        "counts": {"members": len(contents.members), "patients": len({m.patient_id for m in contents.members}),
                   "instances": sum(len(m.instances) for m in contents.members), "files": writer.count + 1,
                   "bytes": writer.total, "per_split": dict(sorted(per_split.items())),
                   "exclusions": len(contents.exclusions)},
        "exclusions": [{"member": e.member_id, "series": e.series_instance_uid, "format": e.format,
                        "code": e.code, "reason": e.reason} for e in contents.exclusions],
        "checksums_sha256": checksums_sha256,
        "audit_head": {"seq": head.seq, "hash": head.hash} if head else None,
    }


def _exclusion_order(e: Exclusion) -> tuple[str, str, str, str]:
    return (e.member_id, e.series_instance_uid or "", e.format, e.code)
