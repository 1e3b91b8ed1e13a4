"""Label maps: what each label value means (a coded concept, as DICOM SEG requires), and the
check that a NIfTI label map lies on its series' grid before any voxel of it is believed.

A label map YAML (``--label-map labels.yaml``)::

    category: {value: "123037004", scheme: SCT, meaning: Anatomical Structure}   # optional default
    segments:
      - number: 1
        label: liver
        type: {value: "10200004", scheme: SCT, meaning: Liver}
      - number: 2
        label: lesion
        category: {value: "49755003", scheme: SCT, meaning: Morphologically Altered Structure}
        type: ["52988006", SCT, Lesion]        # a code may also be [value, scheme, meaning]

Numbers run 1..n without gaps: a BINARY SEG numbers its segments that way (PS3.3 C.8.20.2), and
the label value is the segment number, so a label round-trips as itself. Labels without a map get
the generic concept of ``schemas/datasets/labelmap.json``.

Geometry is compared, never repaired: a map whose shape, voxel spacing, axis directions or origin
differ from the series' NIfTI (``nifti.series_to_nifti``'s sidecar) is refused with
``Unconvertible`` (``shape_mismatch``, ``spacing_mismatch``, ``direction_mismatch``,
``origin_mismatch``; ``not_a_nifti`` and ``not_a_label_map`` for what is not one). A flipped or
reoriented map (nibabel's ``as_closest_canonical``, an LPS/RAS mix-up) is a direction mismatch even
when it describes the same anatomy: reordering voxels is exactly the guess this check exists to stop.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import nibabel
import numpy as np
import yaml

from lakehouse import resources
from lakehouse.datasets.model import Unconvertible

MAX_LO = 64  # DICOM LO: Segment Label, Code Meaning
MAX_SCHEME = 16  # DICOM SH: Coding Scheme Designator


class Code(NamedTuple):
    """A coded concept: (code value, coding scheme designator, code meaning), e.g. SCT 10200004 Liver."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class SegmentDef:
    """One label value and the concept it stands for."""

    number: int
    label: str
    category: Code  # Segmented Property Category (CID 7150)
    type: Code  # Segmented Property Type (CID 7151)


@dataclass(frozen=True)
class LabelMap:
    """Label value -> concept, numbered 1..n."""

    segments: tuple[SegmentDef, ...]

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(s.number for s in self.segments)


@cache
def _spec() -> dict[str, Any]:
    return dict(resources.read_json("datasets", "labelmap.json"))


def max_label() -> int:
    return int(_spec()["max_label"])


def algorithm_type() -> str:
    return str(_spec()["algorithm_type"])


def default_code(kind: str) -> Code:
    """The generic concept of ``labelmap.json`` (``kind`` is ``category`` or ``type``)."""
    return _code(_spec()["default"][kind], "default")


def parse_label_map(text: str) -> LabelMap:
    """The label map a YAML text describes, or ``ValueError`` with a one-line reason."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ValueError("label map is not valid YAML" + (f" (line {line + 1})" if line is not None else "")) from None
    if not isinstance(document, dict) or not isinstance(document.get("segments"), list) or not document["segments"]:
        raise ValueError("label map needs a non-empty 'segments' list")
    default_category = _code(document["category"], "category") if "category" in document else None
    segments = []
    for position, entry in enumerate(document["segments"], start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"segment {position} of the label map is not a mapping")  # noqa: TRY004 - a bad map is a ValueError
        number = entry.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"segment {position} of the label map needs an integer 'number'")  # noqa: TRY004
        label = entry.get("label")
        if not isinstance(label, str) or not _is_lo(label):
            raise ValueError(f"segment {number}: 'label' must be text of 1 to {MAX_LO} characters without backslash")
        if "type" not in entry:
            raise ValueError(f"segment {number} ({label}): 'type' (the coded concept) is missing")
        if "category" not in entry and default_category is None:
            raise ValueError(f"segment {number} ({label}): 'category' is missing and no default category is given")
        category = _code(entry["category"], f"segment {number} category") if "category" in entry else default_category
        assert category is not None  # checked above; for mypy
        segments.append(SegmentDef(number, label, category, _code(entry["type"], f"segment {number} type")))
    return _checked(segments)


def default_label_map(values: Iterable[int], labels: Sequence[str] | None = None) -> LabelMap:
    """A map for label values that came without one: segments 1..max(values), named ``label N``
    (or ``labels``, one per distinct non-zero value in ascending order), each with the generic
    concept of ``labelmap.json`` (SCT 85756007 Tissue, as category and type)."""
    present = sorted({int(v) for v in values if int(v) != 0})
    if labels is not None and len(labels) != len(present):
        raise ValueError(f"{len(labels)} label names given for {len(present)} label values")
    if present and (present[0] < 0 or present[-1] > max_label()):
        raise ValueError(f"label values must lie in 1..{max_label()}")
    names = dict(zip(present, labels, strict=True)) if labels is not None else {}
    category, concept = default_code("category"), default_code("type")
    segments = [
        SegmentDef(n, names.get(n, f"label {n}"), category, concept) for n in range(1, (present[-1] if present else 0) + 1)
    ]
    return _checked(segments) if segments else LabelMap(())


def _checked(segments: list[SegmentDef]) -> LabelMap:
    numbers = sorted(s.number for s in segments)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"segment numbers must run 1..{len(numbers)} without gaps or repeats (a SEG numbers them so)")
    labels = [s.label for s in segments]
    if len(set(labels)) != len(labels):
        raise ValueError("two segments of the label map share a label")
    return LabelMap(tuple(sorted(segments, key=lambda s: s.number)))


def _code(value: Any, where: str) -> Code:
    if isinstance(value, dict):
        parts = [value.get("value"), value.get("scheme"), value.get("meaning")]
    elif isinstance(value, list) and len(value) == 3:
        parts = list(value)
    else:
        raise ValueError(f"{where}: a code is {{value, scheme, meaning}} or [value, scheme, meaning]")
    code = Code(*(str(p).strip() if isinstance(p, str | int) and not isinstance(p, bool) else "" for p in parts))
    if not code.value or not code.scheme or not code.meaning:
        raise ValueError(f"{where}: a code needs a value, a scheme and a meaning")
    if len(code.scheme) > MAX_SCHEME or not _is_lo(code.meaning) or "\\" in code.value:
        raise ValueError(f"{where}: scheme at most {MAX_SCHEME} and meaning at most {MAX_LO} characters, no backslash")
    return code


def _is_lo(text: str) -> bool:
    return 0 < len(text.strip()) <= MAX_LO and "\\" not in text and text.isprintable()


# --- geometry -------------------------------------------------------------------------------------


def check_geometry(label_nii: bytes, sidecar: dict[str, Any], tolerance_mm: float = 1e-3) -> np.ndarray:
    """The label volume (uint16, NIfTI voxel order ``[i, j, k]``) of a NIfTI label map that lies
    on the series' grid, or ``Unconvertible`` naming the first difference. ``tolerance_mm`` is how
    far any voxel centre of the map may lie from the series' voxel centre of the same index (so a
    float32 affine passes, a half-voxel shift does not)."""
    image = _load(label_nii)
    shape = tuple(int(n) for n in sidecar["shape"])
    data_shape = tuple(int(n) for n in image.shape)
    while len(data_shape) > 3 and data_shape[-1] == 1:  # MONAI writes (x, y, z, 1) for one channel
        data_shape = data_shape[:-1]
    if data_shape != shape:
        raise Unconvertible("shape_mismatch", f"label map shape {list(data_shape)} differs from the series' {list(shape)}")
    _compare_affines(np.asarray(image.affine, dtype=float), np.asarray(sidecar["affine"], dtype=float), shape,
                     tolerance_mm)
    return _label_values(np.asanyarray(image.dataobj).reshape(shape))


def _load(data: bytes) -> nibabel.Nifti1Image | nibabel.Nifti2Image:
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError):
        raise Unconvertible("not_a_nifti", "the label map is not a readable .nii.gz") from None
    for kind in (nibabel.Nifti1Image, nibabel.Nifti2Image):
        # nibabel raises many types for a header of the other kind, or for garbage
        with contextlib.suppress(Exception):
            return kind.from_bytes(raw)
    raise Unconvertible("not_a_nifti", "the label map is not a NIfTI-1 or NIfTI-2 image")


def _compare_affines(found: np.ndarray, expected: np.ndarray, shape: tuple[int, ...], tolerance_mm: float) -> None:
    """Spacing, then direction, then origin, each measured as the largest voxel displacement it causes."""
    extent = np.array([max(n - 1, 0) for n in shape], dtype=float)  # voxel steps to the far corner per axis
    found_spacing, expected_spacing = np.linalg.norm(found[:3, :3], axis=0), np.linalg.norm(expected[:3, :3], axis=0)
    if (found_spacing <= 0).any():
        raise Unconvertible("spacing_mismatch", "the label map's affine has a zero-length axis")
    if (np.abs(found_spacing - expected_spacing) * extent).max() > tolerance_mm:
        raise Unconvertible(
            "spacing_mismatch",
            f"voxel spacing {_mm(found_spacing)} mm differs from the series' {_mm(expected_spacing)} mm (resampled?)",
        )
    found_axes, expected_axes = found[:3, :3] / found_spacing, expected[:3, :3] / expected_spacing
    drift = np.linalg.norm(found_axes - expected_axes, axis=0) * expected_spacing * extent
    if drift.max() > tolerance_mm:
        reversed_axes = [a for a in range(3) if found_axes[:, a] @ expected_axes[:, a] < -0.99]
        hint = f"axis {', '.join(map(str, reversed_axes))} reversed: flipped or reoriented?" if reversed_axes else (
            "axes permuted or rotated")
        raise Unconvertible("direction_mismatch", f"axis directions differ from the series' ({hint})")
    shift = float(np.linalg.norm(found[:3, 3] - expected[:3, 3]))
    if shift > tolerance_mm:
        raise Unconvertible("origin_mismatch", f"origin is {shift:.3f} mm from the series' first voxel (shifted?)")


def _mm(values: np.ndarray) -> str:
    return "x".join(f"{v:.4g}" for v in values)


def _label_values(data: np.ndarray) -> np.ndarray:
    if data.dtype.kind not in "uif":
        raise Unconvertible("not_a_label_map", "label map voxels are not numbers")
    if data.dtype.kind == "f" and (not np.isfinite(data).all() or (data != np.round(data)).any()):
        raise Unconvertible("not_a_label_map", "label map voxels are not whole numbers (a probability map?)")
    if data.size and (data.min() < 0 or data.max() > max_label()):
        raise Unconvertible("not_a_label_map", f"label values must lie in 0..{max_label()}")
    return np.asarray(data, dtype=np.uint16)
