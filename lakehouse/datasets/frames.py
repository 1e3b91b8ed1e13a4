"""Per-frame attributes of an image object, classic or enhanced, in one place.

A classic object keeps its plane geometry and rescale at the top level; an enhanced
multi-frame object keeps them in the Per-frame or Shared Functional Groups (PS3.3 C.7.6.16),
per frame first. The NIfTI and PNG renderers both read them through ``FrameAttributes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, iter_pixels

from lakehouse.datasets.model import Unconvertible

COLOR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "PALETTE COLOR")


def frame_count(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def has_pixels(ds: pydicom.Dataset) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def iter_frames(ds: pydicom.Dataset) -> Iterator[np.ndarray]:
    """Each frame as ``(rows, columns[, samples])``, decoded one at a time and not cached on
    ``ds`` (``pixel_array`` would keep a second copy of every object alive with the dataset)."""
    try:
        yield from iter_pixels(ds)
    except Exception as exc:  # decoders raise many types; the type name carries no header value
        raise Unconvertible("undecodable_pixels", f"pixel data cannot be decoded ({type(exc).__name__})") from exc


def decode_frame(ds: pydicom.Dataset, frame: int) -> np.ndarray:
    """Frame ``frame`` (0-based) alone, so a volume never holds two copies of a multi-frame object."""
    try:
        return next(iter_pixels(ds, indices=[frame]))
    except Exception as exc:  # as in iter_frames
        raise Unconvertible("undecodable_pixels", f"pixel data cannot be decoded ({type(exc).__name__})") from exc


def is_color(ds: pydicom.Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    return photometric in COLOR_PHOTOMETRICS or int(ds.get("SamplesPerPixel") or 1) != 1


class _Lookup:
    """Where one frame's attributes live: its Per-frame Functional Groups item, then the Shared
    one, then the top level (a classic object has only the last)."""

    def __init__(self, ds: pydicom.Dataset, frame: int) -> None:
        self.ds = ds
        self.groups: list[pydicom.Dataset] = []
        if "PerFrameFunctionalGroupsSequence" in ds and frame < len(ds.PerFrameFunctionalGroupsSequence):
            self.groups.append(ds.PerFrameFunctionalGroupsSequence[frame])
        if "SharedFunctionalGroupsSequence" in ds and ds.SharedFunctionalGroupsSequence:
            self.groups.append(ds.SharedFunctionalGroupsSequence[0])

    def __call__(self, sequence: str, keyword: str) -> Any:
        for group in self.groups:
            macro = group.get(sequence) if sequence in group else None
            if macro and keyword in macro[0]:
                return macro[0][keyword].value
        return self.ds[keyword].value if keyword in self.ds else None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    """``count`` finite floats from a multi-valued element, else None (missing or malformed)."""
    if value is None:
        return None
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        values = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        return None
    return values


def frame_rescale(ds: pydicom.Dataset, frame: int) -> tuple[float, float]:
    """Rescale Slope and Intercept of ``frame`` (1 and 0 when absent, e.g. most MR)."""
    lookup = _Lookup(ds, frame)
    slope = _floats(lookup("PixelValueTransformationSequence", "RescaleSlope"), 1)
    intercept = _floats(lookup("PixelValueTransformationSequence", "RescaleIntercept"), 1)
    return (slope[0] if slope else 1.0), (intercept[0] if intercept else 0.0)


def frame_voi(ds: pydicom.Dataset, frame: int) -> tuple[float | None, float | None, str]:
    """The producer's first Window Center and Width of ``frame`` and its VOI LUT Function."""
    lookup = _Lookup(ds, frame)
    function = lookup("FrameVOILUTSequence", "VOILUTFunction")
    return (
        _first(lookup("FrameVOILUTSequence", "WindowCenter")),
        _first(lookup("FrameVOILUTSequence", "WindowWidth")),
        str(function or "LINEAR").strip().upper(),
    )


@dataclass(frozen=True)
class FrameAttributes:
    """Plane geometry and rescale of one frame; geometry is None when absent or malformed."""

    position: tuple[float, ...] | None  # ImagePositionPatient (LPS, mm)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column direction cosines
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns) in mm
    slope: float
    intercept: float

    @classmethod
    def of(cls, ds: pydicom.Dataset, frame: int) -> FrameAttributes:
        lookup = _Lookup(ds, frame)
        return cls(
            _floats(lookup("PlanePositionSequence", "ImagePositionPatient"), 3),
            _floats(lookup("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
            _floats(lookup("PixelMeasuresSequence", "PixelSpacing"), 2),
            *frame_rescale(ds, frame),
        )


def _first(value: Any) -> float | None:
    """The first of a possibly multi-valued Window Center/Width (the producer's preferred one)."""
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def modality_values(ds: pydicom.Dataset, stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored values through the Modality LUT (PS3.3 C.11.1): the object's LUT table when it has
    one, else the frame's rescale, as float32 (exact for 16-bit stored values and integer rescales)."""
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    values = stored.astype(np.float32)
    np.multiply(values, slope, out=values)
    np.add(values, intercept, out=values)
    return values
