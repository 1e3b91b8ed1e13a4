"""Burned-in text found by OCR: ``rapidocr``'s PP-OCR models on ``onnxruntime``.

Both wheels are runtime dependencies and ship their models, so nothing is downloaded at run
time. Loaded lazily: objects without burned-in risk never load the models.

``detect_text`` (the detection model alone) locates text regions; pixel cleaning masks them and
runs it again to prove none is left. ``read_text`` (detection and recognition) is only used to
say what kind of text a failed re-check still saw: ``identifying_kinds`` compares it with the
object's own identifiers (the values of the attributes ``schemas/deid/identifying_attributes.json``
lists for the ``pixels`` check) and identifier-like patterns (a full date, a run of 7+ digits).
Findings are reported as counts and kinds, never as the text read.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from lakehouse.deid.identifying import checked_by, parts
from lakehouse.errors import PixelCleaningError

__all__ = ["available", "detect_text", "header_identifiers", "identifying_kinds", "read_text"]

Box = tuple[int, int, int, int]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_PATTERNS = {
    "date": re.compile(
        r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}[- ]?(?:" + "|".join(_MONTHS) + r")[- ]?\d{2,4}\b"
    ),
    "digit_run": re.compile(r"\d{7,}"),
}


def available() -> bool:
    """True when rapidocr and onnxruntime are importable."""
    try:
        import onnxruntime  # noqa: F401
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _engine() -> Any:
    if not available():
        raise PixelCleaningError("ocr_unavailable", "text detection needs rapidocr and onnxruntime")
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})
    # It warns on every frame without text: noise here, where that is the outcome we want.
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


def detect_text(image: np.ndarray) -> list[Box]:
    """Bounds [left, top, right, bottom) of every text region the detector finds in one frame
    (rows × columns [× samples], any integer depth)."""
    result = _run(image, recognise=False)
    boxes = getattr(result, "boxes", None)
    if boxes is None:
        return []
    rows, columns = image.shape[:2]
    found = []
    for quad in np.asarray(boxes, dtype=np.float64):
        left, top = np.floor(quad.min(axis=0))
        right, bottom = np.ceil(quad.max(axis=0))
        found.append((max(0, int(left)), max(0, int(top)), min(columns, int(right)), min(rows, int(bottom))))
    return [b for b in found if b[0] < b[2] and b[1] < b[3]]


def read_text(image: np.ndarray) -> list[str]:
    """Text lines OCR reads in one frame (rows × columns [× samples], any integer depth)."""
    result = _run(image, recognise=True)
    return [str(t) for t in (getattr(result, "txts", None) or ())]


def _run(image: np.ndarray, *, recognise: bool) -> Any:
    bgr = np.ascontiguousarray(_as_rgb8(image)[..., ::-1])  # RapidOCR expects OpenCV's BGR order
    try:
        return _engine()(bgr, use_det=True, use_cls=recognise, use_rec=recognise)
    except PixelCleaningError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model failure means we cannot prove the frame clean
        raise PixelCleaningError("ocr_failed", f"text detection failed ({type(exc).__name__})") from None


def _as_rgb8(frame: np.ndarray) -> np.ndarray:
    """8-bit RGB for the models: other depths are stretched to the frame's own range."""
    image = np.asarray(frame)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        low, high = float(image.min()), float(image.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = ((image.astype(np.float32) - low) * scale).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image


def header_identifiers(ds: Dataset) -> set[str]:
    """The object's own identifiers, normalised to upper-case letters and digits, as they
    may appear on screen (each name component and address part; IDs, institution and station
    whole; dates as YYYYMMDD, MMDDYYYY, DDMMYYYY, unpadded M/D/YYYY and D-MON-YYYY)."""
    found: set[str] = set()
    for tag, kind in checked_by("pixels").items():
        elem = ds.get(tag)
        for value in _values(elem.value if elem is not None else None):
            found.update(_date_forms(value) if kind == "date" else parts(kind, value))
    return {s for s in (_squash(v) for v in found) if len(s) >= 3}


def identifying_kinds(lines: list[str], identifiers: set[str]) -> set[str]:
    """Which kinds of identifying text (identifier, date, digit_run) the lines contain."""
    kinds = set()
    for line in lines:
        upper = line.upper()
        if any(ident in _squash(upper) for ident in identifiers):
            kinds.add("identifier")
        kinds.update(kind for kind, pattern in _PATTERNS.items() if pattern.search(upper))
    return kinds


def _date_forms(value: str) -> list[str]:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 8:
        return []
    y, m, d = digits[:4], digits[4:6], digits[6:8]
    forms = [y + m + d, m + d + y, d + m + y, f"{int(m)}{int(d)}{y}", f"{int(d)}{int(m)}{y}"]
    if 1 <= int(m) <= 12:
        forms += [f"{int(d)}{_MONTHS[int(m) - 1]}{y}", f"{d}{_MONTHS[int(m) - 1]}{y}"]
    return forms


def _values(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _squash(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", str(text).upper())
