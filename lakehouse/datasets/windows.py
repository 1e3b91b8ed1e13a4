"""Display windows: named presets (``schemas/datasets/windows.json``), the object's own VOI
(``dicom``) or an explicit ``W/L`` such as ``1500/-600``, and the VOI functions of PS3.3 C.11.2.1.2
that map modality values to output grey levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from lakehouse import resources

DICOM = "dicom"


@dataclass(frozen=True)
class Window:
    """``center``/``width`` in modality units (HU for CT); both None for ``dicom`` (the object's VOI)."""

    name: str
    center: float | None
    width: float | None


@cache
def presets() -> dict[str, Window]:
    data = resources.read_json("datasets", "windows.json")["presets"]
    return {
        name: Window(name=name, center=float(p["center"]), width=float(p["width"])) for name, p in data.items()
    }


def parse_window(text: str) -> Window:
    """A preset name, ``dicom``, or ``W/L`` (width then level, e.g. ``1500/-600``)."""
    key = text.strip().lower()
    if key == DICOM:
        return Window(name=DICOM, center=None, width=None)
    if key in presets():
        return presets()[key]
    width_text, sep, center_text = key.partition("/")
    try:
        width, center = float(width_text), float(center_text)
    except ValueError:
        width = center = math.nan
    if not sep or not (math.isfinite(width) and math.isfinite(center)) or width < 1:
        names = ", ".join([*presets(), DICOM])
        raise ValueError(f"window must be one of {names} or W/L with width >= 1, e.g. 1500/-600")
    return Window(name=f"{width:g}/{center:g}", center=center, width=width)


def apply_window(
    values: np.ndarray, center: float, width: float, function: str, bits: int,
    slope: float = 1.0, intercept: float = 0.0,
) -> np.ndarray:
    """Modality values to ``bits``-bit grey levels (uint8 or uint16) through a VOI function:
    LINEAR (the default, C.11.2.1.2.1), LINEAR_EXACT or SIGMOID (C.11.2.1.3). ``values`` may be
    stored values with their rescale still to apply: a linear window folds ``slope`` and
    ``intercept`` into its one multiply-add, so a slice is read once."""
    top = float((1 << bits) - 1)
    out_type = np.uint8 if bits == 8 else np.uint16
    if function == "SIGMOID":
        modality = values.astype(np.float64) * slope + intercept
        return np.rint(top / (1.0 + np.exp(-4.0 * (modality - center) / width))).astype(out_type)
    if function == "LINEAR_EXACT":
        low, span = center - width / 2.0, width
    else:  # LINEAR: the standard's half-unit offsets, so an integer window maps integers exactly
        width = max(width, 1.0)
        low, span = center - 0.5 - (width - 1.0) / 2.0, width - 1.0
    if span <= 0:  # a width of 1 (LINEAR) or 0 (LINEAR_EXACT) is a threshold
        return np.where(values * slope + intercept > low, top, 0.0).astype(out_type)
    gain = top / span
    work = np.float32 if bits == 8 else np.float64  # float32 rounds exactly enough for 256 levels
    scaled = values.astype(work)
    np.multiply(scaled, slope * gain, out=scaled)
    np.add(scaled, (intercept - low) * gain, out=scaled)
    np.clip(scaled, 0.0, top, out=scaled)
    return np.rint(scaled, out=scaled).astype(out_type)
