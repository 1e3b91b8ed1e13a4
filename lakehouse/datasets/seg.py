"""Label volumes as DICOM Segmentation objects (highdicom) whose frames reference the exact
de-identified source slices, and back.

The label volume is in NIfTI voxel order ``[i, j, k]`` (column, row, slice along the normal), the
order ``nifti.series_to_nifti`` stacks a series in; its sidecar's ``slices`` list says which
source object and frame slice ``k`` is. Writing hands highdicom one mask per source frame, so
highdicom copies the plane position and orientation of that frame and references it (Derivation
Image Sequence); reading walks those references back to ``k`` and refuses a SEG any of whose
frames reference no slice of the series (``unmatched_frames``), rather than dropping it.

The SEG is BINARY (segment number = label value, one frame per segment and slice, empty frames
omitted), Explicit VR Little Endian, MANUAL, patient and study copied by highdicom from the
de-identified sources. Bytes are deterministic: content date/time come from the sources, the
wall-clock values highdicom adds (instance creation date/time, contribution date/time of the
contributing equipment; all Type 3) are left out, and the Dimension Organization UID (random in
highdicom) is derived from the SEG's own SOP Instance UID.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

import lakehouse
from lakehouse.datasets.labels import Code, LabelMap, SegmentDef, algorithm_type
from lakehouse.datasets.model import Unconvertible

MANUFACTURER = "lakehouse"
MODEL = "lakehouse.datasets.seg"
FALLBACK_DATE, FALLBACK_TIME = "19000101", "000000"  # only when no source carries any date
# Type 2 patient and study attributes highdicom copies from the first source; de-identification
# may have removed some (action X), and a SEG states them empty rather than invented.
PATIENT_STUDY_TYPE2 = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                       "StudyDate", "StudyTime", "ReferringPhysicianName")


def write_seg(
    label_volume: np.ndarray,
    sources: Sequence[pydicom.Dataset],
    slices: list[dict[str, Any]],
    label_map: LabelMap,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    annotator_id: str,
    content_label: str,
) -> bytes:
    """The Part 10 bytes of a BINARY SEG of ``label_volume`` over ``sources`` (the series'
    de-identified objects, any order); ``slices`` is the sidecar's list (k -> SOP UID, frame).
    ``content_label`` is made a valid CS (upper case, ``[A-Z0-9_ ]``, 16 characters)."""
    if label_volume.ndim != 3 or label_volume.shape[2] != len(slices):
        raise Unconvertible("shape_mismatch", f"label volume has shape {list(label_volume.shape)} for {len(slices)} slices")
    if not label_map.segments:
        raise Unconvertible("no_labels", "the label map describes no segment")
    unknown = [v for v in label_values(label_volume) if v not in label_map.numbers]
    if unknown:
        raise Unconvertible("unknown_label", f"label values {unknown[:5]} are not in the label map")
    images, pixels = _frames(label_volume, sources, slices)
    if any("FrameOfReferenceUID" not in ds for ds in images):
        raise Unconvertible("missing_geometry", "a source object has no Frame of Reference UID")
    date, time = _content_datetime(images[0])
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(s) for s in label_map.segments],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=lakehouse.__version__,
        device_serial_number=MODEL,
        content_label=_cs(content_label),
        content_creator_name=PersonName(f"{annotator_id}^"),  # one component: a pseudonymous id
        content_date=date,
        content_time=time,
    )
    _pin_wall_clock(seg, sop_instance_uid)
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _frames(
    volume: np.ndarray, sources: Sequence[pydicom.Dataset], slices: list[dict[str, Any]],
) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The source images and the ``(frames, rows, columns)`` label array in the order highdicom
    pairs them: one classic object per slice, or the frames of one multi-frame object."""
    by_uid = {str(ds.SOPInstanceUID): ds for ds in sources}
    missing = sum(s["SOPInstanceUID"] not in by_uid for s in slices)
    if missing:
        raise Unconvertible("unmatched_frames", f"{missing} of {len(slices)} slices have no source object")
    planes = np.ascontiguousarray(volume.transpose(2, 1, 0))  # (k, rows, columns)
    objects = sorted({s["SOPInstanceUID"] for s in slices})
    if len(objects) == len(slices):  # classic: one object per slice, in slice order
        return [_with_type2(by_uid[s["SOPInstanceUID"]]) for s in slices], planes
    if len(objects) == 1:  # one multi-frame object: its frames in their stored order
        frame_of = np.array([int(s["frame"]) for s in slices])
        if sorted(frame_of) != list(range(int(by_uid[objects[0]].get("NumberOfFrames", 1)))):
            raise Unconvertible("unmatched_frames", "the slices do not cover every frame of the source object")
        ordered = np.empty_like(planes)
        ordered[frame_of] = planes
        return [_with_type2(by_uid[objects[0]])], ordered
    raise Unconvertible("mixed_sources", "series of several multi-frame objects are not written as one SEG")


def _with_type2(source: pydicom.Dataset) -> pydicom.Dataset:
    """``source``, or a shallow copy of it with the missing Type 2 patient/study attributes empty."""
    missing = [keyword for keyword in PATIENT_STUDY_TYPE2 if keyword not in source]
    if not missing:
        return source
    completed = copy.copy(source)
    for keyword in missing:
        setattr(completed, keyword, "")
    return completed


def _description(segment: SegmentDef) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=segment.number,
        segment_label=segment.label,
        segmented_property_category=_concept(segment.category),
        segmented_property_type=_concept(segment.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues(algorithm_type()),
    )


def _concept(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def _content_datetime(source: Dataset) -> tuple[str, str]:
    """The first (de-identified, date-shifted) date the source carries, with its time."""
    for date_keyword, time_keyword in (("ContentDate", "ContentTime"), ("SeriesDate", "SeriesTime"),
                                       ("StudyDate", "StudyTime")):
        date = str(source.get(date_keyword) or "")
        if re.fullmatch(r"\d{8}", date):
            time = str(source.get(time_keyword) or "")
            return date, time.split(".")[0] if re.fullmatch(r"\d{2,6}(\.\d+)?", time) else FALLBACK_TIME
    return FALLBACK_DATE, FALLBACK_TIME


def _cs(text: str) -> str:
    return re.sub(r"[^A-Z0-9_ ]", "_", text.upper())[:16] or "LABELS"


def _pin_wall_clock(seg: Dataset, sop_instance_uid: str) -> None:
    """Replace what highdicom takes from the clock or a random source by values of the inputs."""
    for keyword in ("InstanceCreationDate", "InstanceCreationTime"):
        if keyword in seg:
            delattr(seg, keyword)
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            del item.ContributionDateTime
    digest = hashlib.sha256(f"dimension-organization:{sop_instance_uid}".encode()).hexdigest()[:32]
    organization = "2.25." + str(int(digest, 16))
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = organization
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = organization


# --- reading --------------------------------------------------------------------------------------


def read_seg(
    data: bytes, slices: list[dict[str, Any]], *, shape: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[int, SegmentDef]]:
    """The label volume (uint16, NIfTI voxel order) of a SEG over the series whose sidecar
    ``slices`` are given, and its segments by number. ``shape`` (the sidecar's), when given, is
    checked. Refused (``Unconvertible``): ``not_a_seg``, ``fractional_seg``, ``shape_mismatch``,
    ``unmatched_frames`` (a frame references no slice, or several), ``overlapping_segments``."""
    seg = _parse(data)
    rows, columns = int(seg.Rows), int(seg.Columns)
    if shape is not None and (columns, rows, len(slices)) != tuple(int(n) for n in shape):
        raise Unconvertible("shape_mismatch", f"SEG frames are {rows}x{columns}, the series' slices are not")
    kind = seg.segmentation_type
    if kind == hd.seg.SegmentationTypeValues.FRACTIONAL:
        raise Unconvertible("fractional_seg", "a FRACTIONAL SEG holds probabilities, not labels")
    segments = {n: _segment_def(seg.get_segment_description(n)) for n in seg.segment_numbers}
    slice_of, slices_of = _slice_index(slices)
    pixels = seg.pixel_array.reshape(int(seg.get("NumberOfFrames", 1)), rows, columns)
    volume = np.zeros((columns, rows, len(slices)), dtype=np.uint16)
    unmatched = 0
    shared = seg.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        k = _referenced_slice(item, shared, slice_of, slices_of)
        if k is None:
            unmatched += 1
            continue
        plane = volume[:, :, k].T  # (rows, columns) view
        if kind == hd.seg.SegmentationTypeValues.LABELMAP:
            frame = pixels[index].astype(np.uint16)
            drawn = frame != 0
            if (plane[drawn] != 0).any():
                raise Unconvertible("overlapping_segments", "two frames label the same voxel of a slice")
            plane[drawn] = frame[drawn]
            continue
        drawn = pixels[index] != 0
        if not drawn.any():
            continue
        # per frame, or shared when the SEG has one segment
        identification = item.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        if not identification:
            raise Unconvertible("not_a_seg", "a SEG frame names no segment")
        number = int(identification[0].ReferencedSegmentNumber)
        if (plane[drawn] != 0).any():
            raise Unconvertible("overlapping_segments", "segments overlap; a label map holds one label per voxel")
        plane[drawn] = number
    if unmatched:
        raise Unconvertible(
            "unmatched_frames",
            f"{unmatched} of {len(seg.PerFrameFunctionalGroupsSequence)} SEG frames reference no single slice of the series",
        )
    return volume, segments


def _parse(data: bytes) -> hd.seg.Segmentation:
    try:
        return hd.seg.segread(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - pydicom and highdicom raise many types for what is not a SEG
        raise Unconvertible("not_a_seg", "not a readable DICOM Segmentation object") from None


def _segment_def(description: hd.seg.SegmentDescription) -> SegmentDef:
    category, concept = description.segmented_property_category, description.segmented_property_type
    return SegmentDef(
        number=int(description.segment_number),
        label=str(description.segment_label),
        category=Code(str(category.value), str(category.scheme_designator), str(category.meaning)),
        type=Code(str(concept.value), str(concept.scheme_designator), str(concept.meaning)),
    )


def _slice_index(slices: list[dict[str, Any]]) -> tuple[dict[tuple[str, int], int], dict[str, set[int]]]:
    """(SOP Instance UID, 1-based frame number) -> k (classic objects have frame number 1), and
    SOP Instance UID -> every k of that object."""
    slice_of = {(str(s["SOPInstanceUID"]), int(s["frame"]) + 1): k for k, s in enumerate(slices)}
    slices_of: dict[str, set[int]] = {}
    for (uid, _), k in slice_of.items():
        slices_of.setdefault(uid, set()).add(k)
    return slice_of, slices_of


def _referenced_slice(
    item: Dataset, shared: Dataset, slice_of: dict[tuple[str, int], int], slices_of: dict[str, set[int]],
) -> int | None:
    """The one slice a SEG frame's Derivation Image Sequence points at (None: none or several).
    A reference without Referenced Frame Number means every frame of the object (PS3.3 C.7.6.16.2.6)."""
    derivations = item.get("DerivationImageSequence") or shared.get("DerivationImageSequence") or []
    found = set()
    for derivation in derivations:
        for source in derivation.get("SourceImageSequence", []):
            uid = str(source.get("ReferencedSOPInstanceUID") or "")
            frames = source.get("ReferencedFrameNumber")
            if frames is None:
                found |= slices_of.get(uid, set())
            else:
                numbers = frames if isinstance(frames, Sequence) and not isinstance(frames, str) else [frames]
                found |= {slice_of[(uid, int(n))] for n in numbers if (uid, int(n)) in slice_of}
    return found.pop() if len(found) == 1 else None


def label_values(label_volume: np.ndarray) -> list[int]:
    """The non-zero label values present, ascending (one counting pass in memory order)."""
    return [int(v) for v in np.flatnonzero(_counts(label_volume)) if v]


def _counts(label_volume: np.ndarray) -> np.ndarray:
    """Voxels per label value. ``ravel(order="K")`` keeps a NIfTI (Fortran order) volume uncopied."""
    return np.bincount(np.asarray(label_volume, dtype=np.uint16).ravel(order="K"))


def segment_stats(label_volume: np.ndarray, spacing_mm: Sequence[float]) -> dict[int, tuple[int, float]]:
    """Voxel count and volume in millilitres of every non-zero label value present."""
    counts = _counts(label_volume)
    voxel_ml = float(np.prod([float(s) for s in spacing_mm])) / 1000.0
    return {n: (int(c), int(c) * voxel_ml) for n, c in enumerate(counts) if n and c}
