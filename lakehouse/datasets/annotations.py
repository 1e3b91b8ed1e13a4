"""Labels come back: label maps, SEG objects and Label Studio exports imported as DICOM SEG tied
to the exact de-identified source slices of a dataset version, with ``annotations`` and
``annotation_segments`` rows in the project's research zone.

Every input is first turned into a label volume in the voxel order of the series' NIfTI (the
geometry ``nifti.series_grid`` derives from the research objects, the same one the
dataset's NIfTI files have), checked against that geometry, never resampled or guessed; then
written as a SEG whose frames reference the source SOP Instance UIDs. A SEG that carries any
source identifier of its series (from the restricted lineage) or the annotator's name is
refused. An annotation's id is a hash of what it is (version, series, round, annotator,
voxels, labels), so importing the same labels twice changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from lakehouse import governance, lake
from lakehouse.config import Settings
from lakehouse.datasets import layout, registry
from lakehouse.datasets.agreement import agreement
from lakehouse.datasets.labels import LabelMap, check_geometry, default_label_map, parse_label_map
from lakehouse.datasets.labelstudio import ImageMask, read_labelstudio_export
from lakehouse.datasets.model import Unconvertible
from lakehouse.datasets.nifti import label_map_nifti, series_grid
from lakehouse.datasets.seg import label_values, read_seg, segment_stats, write_seg
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.errors import Refused
from lakehouse.quality.forbidden import ForbiddenMatcher
from lakehouse.storage import open_zone

KINDS = ("nifti", "seg", "labelstudio")
STATUSES = ("draft", "final")
SEG_SERIES_NUMBER = 9901


@dataclass(frozen=True)
class _Series:
    """A series of the dataset version, as the import needs it."""

    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    request_id: str
    split: str
    sops: tuple[str, ...]


@dataclass(frozen=True)
class _Geometry:
    sources: Sequence[pydicom.Dataset]
    sidecar: dict[str, Any]

    @property
    def spacing(self) -> tuple[float, float, float]:
        x, y, z = self.sidecar["spacing"]
        return float(x), float(y), float(z)


@dataclass
class ImportResult:
    imported: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)  # what, code, reason (no values)

    def to_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "refused": self.refused}


@dataclass(frozen=True)
class _Labels:
    series: _Series
    volume: np.ndarray
    label_map: LabelMap
    annotator: str
    origin: str  # the input file (and series), for a refusal


class _LastGeometry:
    """The geometry of the series being imported. Inputs come series by series, so only the
    last one is kept: memory stays at one series' objects whatever the import's size."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.settings = settings
        self.project = project
        self.last: tuple[str, _Geometry] | None = None

    def __call__(self, series: _Series) -> _Geometry:
        if self.last is None or self.last[0] != series.series_instance_uid:
            self.last = None  # let the previous series' objects go before reading the next
            self.last = (series.series_instance_uid, _series_geometry(self.settings, self.project, series))
        return self.last[1]


@quiet_pydicom()  # pydicom's warnings and log records quote values
def import_annotations(
    settings: Settings, project: str, name: str, version: int, source: Path, *, kind: str, user: str,
    pseudonym: Callable[[str], str], round_: str = "r1", label_map_text: str | None = None,
    annotator: str | None = None, status: str = "final",
) -> ImportResult:
    """Import every label file under ``source`` (a file or a folder) for ``name@v<version>``.
    ``pseudonym`` turns an annotator's name into the id stored (a keyed hash)."""
    governance.require_role(settings, user, "labelers", "curators")
    if kind not in KINDS or status not in STATUSES:
        raise registry.DatasetError(f"--kind is one of {', '.join(KINDS)} and --status one of {', '.join(STATUSES)}")
    found = registry.get_version(settings, project, name, version)
    if found.status != "published":
        raise Refused(f"dataset {found.ref} is {found.status}; annotations are imported only into published versions")
    label_map = parse_label_map(label_map_text) if label_map_text else None
    series = _version_series(settings, project, name, found.version)
    result = ImportResult()
    geometry = _LastGeometry(settings, project)
    rows, segments = [], []
    for labels in _read_inputs(settings, project, name, found.version, source, kind, series, geometry, label_map,
                               annotator, result):
        try:
            made = _store(settings, project, name, found.version, labels, geometry(labels.series), round_, kind,
                          status, pseudonym(labels.annotator or "unknown"), labels.annotator)
        except Unconvertible as exc:
            result.refused.append({"file": labels.origin, "code": exc.code, "reason": exc.reason})
            continue
        rows.append(made[0])
        segments += made[1]
    if rows:
        _commit(settings, project, rows, segments)
        result.imported = [{k: r[k] for k in ("annotation_id", "SeriesInstanceUID", "status", "frames", "supersedes")}
                           for r in rows]
    governance.append_audit(
        settings, user=user, action="dataset.annotations.import",
        details={"project": project, "dataset": found.ref, "kind": kind, "imported": len(rows),
                 "refused": len(result.refused), "round": round_},
    )
    return result


# --- reading the inputs -------------------------------------------------------------------------


def _read_inputs(
    settings: Settings, project: str, name: str, version: int, source: Path, kind: str,
    series: dict[str, _Series], geometry: Callable[[_Series], _Geometry], label_map: LabelMap | None,
    annotator: str | None, result: ImportResult,
) -> Iterator[_Labels]:
    """The label volumes of the inputs, one at a time (files in name order); what does not fit
    is added to ``result.refused``."""
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    if not files:
        raise Refused(f"nothing to import under {source.name}")
    if kind == "labelstudio":
        for path in files:
            yield from _from_labelstudio(settings, project, name, version, path, series, geometry, label_map,
                                         annotator, result)
        return
    by_case = {layout.case_id(uid): s for uid, s in series.items()}
    for path in files:
        try:
            if kind == "nifti":
                case = path.name.removesuffix(".gz").removesuffix(".nii").removesuffix("_0000")
                target = by_case.get(case)
                if target is None:
                    raise Unconvertible("unknown_case", f"{path.name} names no series of the version (case ids: nnU-Net's)")
                volume = check_geometry(path.read_bytes(), geometry(target).sidecar)
                chosen = label_map or default_label_map(label_values(volume))
                labels = _Labels(target, volume, chosen, annotator or "unknown", path.name)
            else:
                data = path.read_bytes()
                target = _seg_series(data, series)
                sidecar = geometry(target).sidecar
                volume, defs = read_seg(data, sidecar["slices"], shape=sidecar["shape"])
                chosen = label_map or LabelMap(tuple(defs[n] for n in sorted(defs)))
                labels = _Labels(target, volume, chosen, annotator or _content_creator(data), path.name)
        except Unconvertible as exc:
            result.refused.append({"file": path.name, "code": exc.code, "reason": exc.reason})
            continue
        yield labels


def _seg_series(data: bytes, series: dict[str, _Series]) -> _Series:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        referenced = {item.SeriesInstanceUID for item in ds.ReferencedSeriesSequence}
    except Exception:  # noqa: BLE001 - any unreadable input is one refusal, not a crash
        raise Unconvertible("not_a_seg", "not a DICOM SEG with a Referenced Series Sequence") from None
    hits = [series[uid] for uid in sorted(referenced) if uid in series]
    if len(hits) != 1:
        raise Unconvertible("unknown_series", "the SEG references no (or more than one) series of the version")
    return hits[0]


def _content_creator(data: bytes) -> str:
    """Who made a SEG, as its Content Creator's Name says (a one-part PN: no trailing '^')."""
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.get("ContentCreatorName") or "unknown").strip("^ ") or "unknown"


def _from_labelstudio(
    settings: Settings, project: str, name: str, version: int, path: Path, series: dict[str, _Series],
    geometry: Callable[[_Series], _Geometry], label_map: LabelMap | None, annotator: str | None,
    result: ImportResult,
) -> Iterator[_Labels]:
    """One label volume per series and annotator from the masks of a Label Studio export."""
    store = open_zone(settings, "datasets")
    tasks_key = layout.version_prefix(project, name, version) + layout.MANIFEST_FILES["labelstudio"][0]
    if not store.exists(tasks_key):
        raise Refused(f"dataset {name}@v{version} has no Label Studio manifest (build it with --manifest labelstudio)")
    try:
        masks = read_labelstudio_export(path.read_bytes(), json.loads(store.get(tasks_key)))
    except ValueError as exc:
        raise Refused(f"Label Studio export refused: {exc}") from None
    series_of = {sop: s for s in series.values() for sop in s.sops}
    names = sorted({m.label for m in masks})
    chosen = label_map or default_label_map(range(1, len(names) + 1), names)
    number = {d.label: d.number for d in chosen.segments}
    missing = sorted(set(names) - set(number))
    if missing:
        raise Refused(f"{len(missing)} Label Studio labels are not in the label map")
    grouped: defaultdict[tuple[str, str], list[ImageMask]] = defaultdict(list)
    for mask in masks:
        who = annotator or mask.annotator or "unknown"
        grouped[(series_of[mask.sop_instance_uid].series_instance_uid, who)].append(mask)
    for (uid, who), items in sorted(grouped.items()):
        origin = f"{path.name} (series {uid})"
        try:
            volume = _painted(geometry(series[uid]).sidecar, items, number)
        except Unconvertible as exc:
            result.refused.append({"file": origin, "code": exc.code, "reason": exc.reason})
            continue
        yield _Labels(series[uid], volume, chosen, who, origin)


def _painted(sidecar: dict[str, Any], masks: list[ImageMask], number: dict[str, int]) -> np.ndarray:
    """The masks of one series painted into a label volume on its NIfTI grid."""
    index = {(s["SOPInstanceUID"], s["frame"]): s["index"] for s in sidecar["slices"]}
    volume = np.zeros(tuple(sidecar["shape"]), dtype=np.uint16)
    for mask in masks:
        k = index.get((mask.sop_instance_uid, mask.frame))
        if k is None:
            raise Unconvertible("unmatched_frames", "a mask lies on an image that is not a slice of the series volume")
        if mask.mask.shape != (volume.shape[1], volume.shape[0]):
            raise Unconvertible("shape_mismatch", f"a {mask.mask.shape[1]}x{mask.mask.shape[0]} mask on a "
                                f"{volume.shape[0]}x{volume.shape[1]} image")
        volume[:, :, k][mask.mask.T] = number[mask.label]  # NIfTI (i, j) is (column, row)
    return volume


# --- the version's series and their geometry ------------------------------------------------------


def _version_series(settings: Settings, project: str, name: str, version: int) -> dict[str, _Series]:
    rows = lake.table(settings, "dataset_instances", project=project).read(
        filters=[("name", "=", name), ("version", "=", version)]).to_pylist()
    grouped: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["SeriesInstanceUID"]].append(row)
    return {
        uid: _Series(uid, items[0]["StudyInstanceUID"], items[0]["PatientID"], items[0]["request_id"],
                     items[0]["split"], tuple(sorted(r["SOPInstanceUID"] for r in items)))
        for uid, items in grouped.items()
    }


def _series_geometry(settings: Settings, project: str, series: _Series) -> _Geometry:
    instances = lake.table(settings, "instances", project=project).read(
        columns=["SOPInstanceUID", "object_key"], filters=[("SOPInstanceUID", "in", set(series.sops))])
    if instances.num_rows != len(series.sops):
        raise Refused("instances of the dataset version are no longer in the research zone (purged)")
    research = open_zone(settings, "research")
    sources = [pydicom.dcmread(io.BytesIO(research.get(key))) for key in sorted(instances.column("object_key").to_pylist())]
    return _Geometry(sources, series_grid(sources))


# --- writing ------------------------------------------------------------------------------------


def _uid(kind: str, annotation_id: str) -> str:
    return "2.25." + str(int(hashlib.sha256(f"{kind}:{annotation_id}".encode()).hexdigest()[:32], 16))


def _store(
    settings: Settings, project: str, name: str, version: int, labels: _Labels, geometry: _Geometry,
    round_: str, kind: str, status: str, annotator_id: str, annotator_name: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    series = labels.series
    concepts = json.dumps([[d.number, d.label, list(d.category), list(d.type)] for d in labels.label_map.segments])
    hasher = hashlib.sha256(f"{name}@v{version}|{series.series_instance_uid}|{round_}|{annotator_id}|{concepts}|".encode())
    hasher.update(np.ascontiguousarray(labels.volume.transpose(2, 1, 0), dtype=np.uint16).data.cast("B"))  # (k, row, col)
    digest = hasher.hexdigest()[:32]
    seg = write_seg(
        labels.volume, geometry.sources, geometry.sidecar["slices"], labels.label_map,
        series_instance_uid=_uid("seg-series", digest), sop_instance_uid=_uid("seg-instance", digest),
        series_number=SEG_SERIES_NUMBER, annotator_id=annotator_id, content_label=f"LABELS{round_.upper()[:8]}",
    )
    _refuse_identifiers(settings, series, seg, annotator_name)
    key = f"{project}/annotations/{series.series_instance_uid}/{digest}.dcm"
    open_zone(settings, "research").put(key, seg)
    frames = int(pydicom.dcmread(io.BytesIO(seg), stop_before_pixels=True).get("NumberOfFrames", 0))
    row = {
        "annotation_id": digest, "dataset": name, "version": version, "PatientID": series.patient_id,
        "StudyInstanceUID": series.study_instance_uid, "SeriesInstanceUID": series.series_instance_uid,
        "request_id": series.request_id, "round": round_, "annotator_id": annotator_id, "tool": kind,
        "status": status, "supersedes": None, "seg_object_key": key, "seg_sha256": hashlib.sha256(seg).hexdigest(),
        "SegSeriesInstanceUID": _uid("seg-series", digest), "SegSOPInstanceUID": _uid("seg-instance", digest),
        "frames": frames, "created_at": datetime.now(UTC),
    }
    stats = segment_stats(labels.volume, geometry.spacing)
    segments = [
        {"annotation_id": digest, "segment_number": d.number, "label": d.label, "category_code": "^".join(d.category),
         "type_code": "^".join(d.type), "voxels": stats.get(d.number, (0, 0.0))[0],
         "volume_ml": stats.get(d.number, (0, 0.0))[1]}
        for d in labels.label_map.segments
    ]
    return row, segments


def _refuse_identifiers(settings: Settings, series: _Series, seg: bytes, annotator_name: str) -> None:
    lineage = lake.table(settings, "lineage").read(
        columns=["source_patient_id", "source_study_instance_uid", "source_series_instance_uid",
                 "source_sop_instance_uid", "source_key"],
        filters=[("sop_instance_uid", "in", set(series.sops))],
    )
    values = {v for column in lineage.columns for v in column.to_pylist() if v}
    if len(annotator_name) >= 3 and annotator_name != "unknown":
        values.add(annotator_name)
    if ForbiddenMatcher(values).found_in(seg.decode("latin-1")):
        raise Refused("the SEG written for a series holds a source identifier or the annotator's name; not imported")


def _commit(settings: Settings, project: str, rows: list[dict[str, Any]], segments: list[dict[str, Any]]) -> None:
    """Segments first, then the annotations (the publication point) with the superseded rows."""
    table = lake.table(settings, "annotations", project=project)
    current = table.read().to_pylist() if table.exists() else []
    new_ids = {r["annotation_id"] for r in rows}
    labels_of = defaultdict(set)
    for s in segments:
        labels_of[s["annotation_id"]].add(s["label"])
    known = _segment_labels(settings, project, {r["annotation_id"] for r in current})
    updates = []
    for row in rows:
        if row["status"] != "final":
            continue
        older = [c for c in current if c["SeriesInstanceUID"] == row["SeriesInstanceUID"] and c["status"] == "final"
                 and c["annotation_id"] not in new_ids and known.get(c["annotation_id"], set()) & labels_of[row["annotation_id"]]]
        row["supersedes"] = sorted(c["annotation_id"] for c in older) or None
        updates += [{**c, "status": "superseded"} for c in older]
    segs = lake.table(settings, "annotation_segments", project=project)
    fresh = [s for s in segments if s["annotation_id"] not in {c["annotation_id"] for c in current}]
    if fresh:
        app = "annotations:" + hashlib.sha256("|".join(sorted(new_ids)).encode()).hexdigest()[:24]
        segs.commit_once(segs.spec.to_arrow(fresh), app_id=app, version=1)
    table.merge(table.spec.to_arrow(rows + updates))


def _segment_labels(settings: Settings, project: str, ids: set[str]) -> dict[str, set[str]]:
    table = lake.table(settings, "annotation_segments", project=project)
    if not ids or not table.exists():
        return {}
    found: defaultdict[str, set[str]] = defaultdict(set)
    for row in table.read(columns=["annotation_id", "label"], filters=[("annotation_id", "in", ids)]).to_pylist():
        found[row["annotation_id"]].add(row["label"])
    return found


# --- list, export, agreement ------------------------------------------------------------------------


def list_annotations(settings: Settings, project: str, name: str, version: int | None = None) -> list[dict[str, Any]]:
    table = lake.table(settings, "annotations", project=project)
    if not table.exists():
        return []
    filters: list[tuple[str, str, Any]] = [("dataset", "=", name)]
    if version is not None:
        filters.append(("version", "=", version))
    rows = table.read(filters=filters).to_pylist()
    segments = _segments(settings, project, {r["annotation_id"] for r in rows})
    for row in rows:
        row["segments"] = segments.get(row["annotation_id"], [])
    return sorted(rows, key=lambda r: (r["version"], r["SeriesInstanceUID"], r["created_at"], r["annotation_id"]))


def _segments(settings: Settings, project: str, ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    table = lake.table(settings, "annotation_segments", project=project)
    found: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    if ids and table.exists():
        for row in table.read(filters=[("annotation_id", "in", ids)]).to_pylist():
            found[row["annotation_id"]].append(row)
    return {k: sorted(v, key=lambda r: r["segment_number"]) for k, v in found.items()}


@quiet_pydicom()  # pydicom's warnings and log records quote values
def export_annotations(
    settings: Settings, project: str, name: str, version: int, *, as_: str, to: Path, user: str,
    statuses: Iterable[str] = ("final",),
) -> list[str]:
    """Write the version's annotations (final by default) as SEG objects or NIfTI label maps
    named by case (``<case>.nii.gz``, nnU-Net's labelsTr names); returns the files written."""
    governance.require_role(settings, user, "labelers", "curators")
    if as_ not in ("seg", "nifti"):
        raise registry.DatasetError("--as is seg or nifti")
    found = registry.get_version(settings, project, name, version)
    wanted = [r for r in list_annotations(settings, project, name, found.version) if r["status"] in set(statuses)]
    research = open_zone(settings, "research")
    series = _version_series(settings, project, name, found.version)
    written = []
    to.mkdir(parents=True, exist_ok=True)
    for row in wanted:
        data = research.get(row["seg_object_key"])
        if hashlib.sha256(data).hexdigest() != row["seg_sha256"]:
            raise Refused(f"annotation {row['annotation_id']}: its SEG differs from the recorded SHA-256")
        case = layout.case_id(row["SeriesInstanceUID"])
        if as_ == "seg":
            path = to / f"{case}_{row['annotation_id'][:12]}.dcm"
            path.write_bytes(data)
        else:
            sidecar = _series_geometry(settings, project, series[row["SeriesInstanceUID"]]).sidecar
            volume, _ = read_seg(data, sidecar["slices"], shape=sidecar["shape"])
            path = to / f"{case}_{row['annotation_id'][:12]}.nii.gz"
            path.write_bytes(label_map_nifti(volume, sidecar))
        written.append(path.name)
    governance.append_audit(settings, user=user, action="dataset.annotations.export",
                            details={"project": project, "dataset": found.ref, "files": len(written), "as": as_})
    return written


@quiet_pydicom()  # pydicom's warnings and log records quote values
def annotation_agreement(
    settings: Settings, project: str, name: str, version: int, *, round_: str | None = None,
) -> list[dict[str, Any]]:
    """Dice and volume difference per segment for every pair of annotations of the same series
    (different annotators or rounds), final or draft, superseded ones left out."""
    rows = [r for r in list_annotations(settings, project, name, version)
            if r["status"] != "superseded" and (round_ is None or r["round"] == round_)]
    by_series: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_series[row["SeriesInstanceUID"]].append(row)
    research = open_zone(settings, "research")
    series = _version_series(settings, project, name, version)
    table = []
    for uid, items in sorted(by_series.items()):
        if len(items) < 2:
            continue
        sidecar = _series_geometry(settings, project, series[uid]).sidecar
        volumes = {r["annotation_id"]: read_seg(research.get(r["seg_object_key"]), sidecar["slices"],
                                                shape=sidecar["shape"])[0] for r in items}
        spacing = tuple(float(v) for v in sidecar["spacing"])
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                numbers = sorted({s["segment_number"] for s in a["segments"]} | {s["segment_number"] for s in b["segments"]})
                for entry in agreement(volumes[a["annotation_id"]], volumes[b["annotation_id"]], numbers, spacing):
                    table.append({"series": uid, "a": a["annotation_id"], "b": b["annotation_id"],
                                  "a_round": a["round"], "b_round": b["round"], **entry})
    return table
