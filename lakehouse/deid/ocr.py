"""Optional OCR check that masked frames show no identifying text (the ``[ocr]`` extra).

Uses ``rapidocr`` on ``onnxruntime``; both wheels ship their models, so nothing is downloaded
at run time. Imported lazily: the default (no OCR) path never loads them. Scanner screens
keep harmless technical text (probe, gain, depth), so "no text at all" would reject every
ultrasound; the check is instead: no recognised text contains one of the object's own
identifiers (the values of the attributes ``schemas/deid/identifying_attributes.json`` lists
for the ``pixels`` check: name components, IDs, addresses, institution and station, dates in
the usual on-screen forms) or an identifier-like pattern (a full date, a run of 7+ digits).
Findings are reported as counts and kinds, never as the text read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from lakehouse.deid.identifying import checked_by, parts
from lakehouse.errors import PixelCleaningError

__all__ = ["available", "header_identifiers", "read_text", "verify_no_identifying_text"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_PATTERNS = {
    "date": re.compile(
        r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}[- ]?(?:" + "|".join(_MONTHS) + r")[- ]?\d{2,4}\b"
    ),
    "digit_run": re.compile(r"\d{7,}"),
}


def available() -> bool:
    """True when the ``[ocr]`` extra (rapidocr + onnxruntime) is importable."""
    try:
        import onnxruntime  # noqa: F401
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _engine() -> Any:
    if not available():
        raise PixelCleaningError(
            "ocr_unavailable", "OCR verification needs the [ocr] extra (rapidocr, onnxruntime)"
        )
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    from rapidocr import RapidOCR

    return RapidOCR()


def read_text(frame: np.ndarray) -> list[str]:
    """Text lines OCR reads in one frame (rows × columns [× samples], any integer depth)."""
    image = np.asarray(frame)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        low, high = float(image.min()), float(image.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = ((image.astype(np.float32) - low) * scale).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    result = _engine()(np.ascontiguousarray(image[..., ::-1]))  # RapidOCR expects OpenCV's BGR order
    return [str(t) for t in (getattr(result, "txts", None) or ())]


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


def verify_no_identifying_text(frames: Iterable[np.ndarray], identifiers: set[str]) -> None:
    """Raise PixelCleaningError("ocr_text_found") if any frame shows identifying text."""
    kinds: set[str] = set()
    hit_frames = 0
    for frame in frames:
        frame_kinds = _findings(read_text(frame), identifiers)
        if frame_kinds:
            hit_frames += 1
            kinds |= frame_kinds
    if hit_frames:
        raise PixelCleaningError(
            "ocr_text_found", f"OCR found {'/'.join(sorted(kinds))} text in {hit_frames} masked frame(s)"
        )


def _findings(lines: list[str], identifiers: set[str]) -> set[str]:
    kinds = set()
    for line in lines:
        upper = line.upper()
        squashed = _squash(upper)
        if any(ident in squashed for ident in identifiers):
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
