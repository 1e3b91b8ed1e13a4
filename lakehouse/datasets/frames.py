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


def _group_item(ds: pydicom.Dataset, frame: int, sequence: str) -> Any:
    """The first item of functional-group macro ``sequence`` for ``frame``, per-frame first."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        item = per_frame[frame].get(sequence)
        if item:
            return item[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        item = shared[0].get(sequence)
        if item:
            return item[0]
    return None


def _lookup(ds: pydicom.Dataset, frame: int, sequence: str, keyword: str) -> Any:
    item = _group_item(ds, frame, sequence)
    if item is not None and keyword in item:
        return item.get(keyword)
    return ds.get(keyword)


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


@dataclass(frozen=True)
class FrameAttributes:
    """What a renderer needs about one frame; geometry fields are None when absent or malformed."""

    position: tuple[float, ...] | None  # ImagePositionPatient (LPS, mm)
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row then column direction cosines
    pixel_spacing: tuple[float, ...] | None  # (between rows, between columns) in mm
    slope: float
    intercept: float
    window_center: float | None
    window_width: float | None
    voi_function: str

    @classmethod
    def of(cls, ds: pydicom.Dataset, frame: int) -> FrameAttributes:
        slope = _floats(_lookup(ds, frame, "PixelValueTransformationSequence", "RescaleSlope"), 1)
        intercept = _floats(_lookup(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept"), 1)
        center = _lookup(ds, frame, "FrameVOILUTSequence", "WindowCenter")
        width = _lookup(ds, frame, "FrameVOILUTSequence", "WindowWidth")
        function = _lookup(ds, frame, "FrameVOILUTSequence", "VOILUTFunction")
        return cls(
            position=_floats(_lookup(ds, frame, "PlanePositionSequence", "ImagePositionPatient"), 3),
            orientation=_floats(_lookup(ds, frame, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
            pixel_spacing=_floats(_lookup(ds, frame, "PixelMeasuresSequence", "PixelSpacing"), 2),
            slope=slope[0] if slope else 1.0,
            intercept=intercept[0] if intercept else 0.0,
            window_center=_first(center),
            window_width=_first(width),
            voi_function=str(function or "LINEAR").strip().upper(),
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


def modality_values(ds: pydicom.Dataset, stored: np.ndarray, frame: FrameAttributes) -> np.ndarray:
    """Stored values through the Modality LUT (PS3.3 C.11.1): a LUT table when the object has one,
    else the frame's rescale. float32 keeps CT/MR values exact and halves the work of float64."""
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    values = stored.astype(np.float32)
    if frame.slope != 1.0:
        values *= np.float32(frame.slope)
    if frame.intercept != 0.0:
        values += np.float32(frame.intercept)
    return values
