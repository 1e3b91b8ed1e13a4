"""Burned-in text: risk triage and masking of pixel data (PS3.15 E.1.1, Clean Pixel Data Option).

``burned_in_risk`` decides whether an object may carry identifying text in its pixels;
``clean_pixel_data`` blanks the rectangles that ``schemas/deid/masks.json`` names for the
object's modality, manufacturer, model and frame size, in every frame, and writes the result
back as native Explicit VR Little Endian. Anything that cannot be decoded, has no rule, or
(with OCR verification) still shows identifying text raises ``PixelCleaningError`` with a
stable code; the dataset is left untouched in that case (changes are applied only at the end).

Risk triage, in order (documented choice where the issue is silent):

1. No (7FE0,0010/0008/0009) pixel data and no (0042,0011) Encapsulated Document → no risk.
2. Burned In Annotation (0028,0301) ``YES`` → risk; ``NO`` → no risk (the modality's word
   is trusted, as PS3.15 does).
3. Absent or any other value → risk when the modality is in ``BURNED_IN_MODALITIES``, the SOP
   class is a secondary capture, ultrasound, encapsulated document or video class, the
   transfer syntax is a video one, or neither Modality nor SOP Class UID is present
   (unknown objects are treated as risky).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MPEGTransferSyntaxes,
    RLELossless,
)

from lakehouse import resources
from lakehouse.errors import ConfigError, PixelCleaningError

__all__ = [
    "BURNED_IN_MODALITIES",
    "DEFAULT_MASK_RULES",
    "MaskRule",
    "PixelCleaningError",
    "burned_in_risk",
    "clean_pixel_data",
    "load_mask_rules",
    "mask_rectangles",
]

DEFAULT_MASK_RULES = resources.schema_file("deid", "masks.json")

#: Modalities whose images commonly carry burned-in text: the issue's list (US, SC, XA, ES, OT)
#: plus XC (external-camera photographs of labelled specimens/screens) and DOC (documents).
BURNED_IN_MODALITIES = frozenset({"US", "SC", "XA", "ES", "OT", "XC", "DOC"})

_SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"  # SC and the multi-frame SC classes (.7.x)
_ENCAPSULATED_DOCUMENT_ROOT = "1.2.840.10008.5.1.4.1.1.104."  # PDF, CDA, STL, OBJ, MTL
_ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    }
)
_VIDEO_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.2.1",  # Video Microscopic Image Storage
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image Storage
    }
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Decoded by pydicom itself (native, RLE) or through pillow (JPEG baseline); the rest needs
#: plugins we do not ship (JPEG-LS, JPEG 2000, lossless JPEG) or is big endian (retired).
_DECODABLE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        JPEGBaseline8Bit,
        RLELossless,
    }
)
_PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422"})


def burned_in_risk(ds: Dataset) -> bool:
    """True if the object's pixels (or encapsulated document) may carry burned-in identifying text."""
    if not any(tag in ds for tag in _PIXEL_TAGS) and 0x00420011 not in ds:
        return False
    stated = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if stated in ("YES", "NO"):
        return stated == "YES"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if not modality and not sop_class:
        return True
    if modality in BURNED_IN_MODALITIES:
        return True
    if (
        sop_class.startswith((_SECONDARY_CAPTURE_ROOT, _ENCAPSULATED_DOCUMENT_ROOT))
        or sop_class in _ULTRASOUND_CLASSES
        or sop_class in _VIDEO_CLASSES
    ):
        return True
    return _transfer_syntax(ds) in MPEGTransferSyntaxes


@dataclass(frozen=True)
class MaskRule:
    """One row of masks.json: criteria (None = any) → rectangles [left, top, right, bottom)."""

    id: str
    modality: str
    manufacturer: str | None
    model: str | None
    rows: int | None
    columns: int | None
    fraction: bool
    rectangles: tuple[tuple[float, float, float, float], ...]

    @property
    def specificity(self) -> int:
        size = self.rows is not None or self.columns is not None
        return sum((self.manufacturer is not None, self.model is not None, size))

    def matches(self, modality: str, manufacturer: str, model: str, rows: int, columns: int) -> bool:
        return (
            self.modality == modality
            and (self.manufacturer is None or _norm(self.manufacturer) == manufacturer)
            and (self.model is None or _norm(self.model) == model)
            and (self.rows is None or self.rows == rows)
            and (self.columns is None or self.columns == columns)
        )

    def pixel_boxes(self, rows: int, columns: int) -> list[tuple[int, int, int, int]]:
        """Rectangles in pixels, clipped to the frame; fractions are rounded outwards."""
        boxes = []
        for left, top, right, bottom in self.rectangles:
            if self.fraction:
                left, right = np.floor(left * columns), np.ceil(right * columns)
                top, bottom = np.floor(top * rows), np.ceil(bottom * rows)
            boxes.append(
                (max(0, int(left)), max(0, int(top)), min(columns, int(right)), min(rows, int(bottom)))
            )
        return boxes


def load_mask_rules(path: str | Path | None = None) -> tuple[MaskRule, ...]:
    """The rules of a masks.json file, validated; raises ConfigError naming the bad rule."""
    return _load_mask_rules(str(Path(path).resolve()) if path else None)


@lru_cache(maxsize=8)
def _load_mask_rules(path: str | None) -> tuple[MaskRule, ...]:
    """``path``: a masks.json file, or None for the packaged schemas/deid/masks.json."""
    try:
        doc = json.loads(Path(path).read_text() if path else DEFAULT_MASK_RULES.read_text())
        raw_rules = doc["rules"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        where = path or "schemas/deid/masks.json"
        raise ConfigError(f"mask rules file unreadable ({type(exc).__name__}): {where}") from None
    rules, seen = [], set()
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, index)
        key = (
            rule.modality,
            rule.manufacturer and _norm(rule.manufacturer),
            rule.model and _norm(rule.model),
            rule.rows,
            rule.columns,
        )
        if key in seen:
            raise ConfigError(f"mask rule {rule.id!r} repeats the criteria of an earlier rule")
        seen.add(key)
        rules.append(rule)
    return tuple(rules)


def _parse_rule(raw: dict, index: int) -> MaskRule:
    rule_id = str(raw.get("id") or f"#{index}")
    units = raw.get("units", "pixels")
    rectangles = raw.get("rectangles")
    if not raw.get("modality") or units not in ("pixels", "fraction") or not rectangles:
        raise ConfigError(f"mask rule {rule_id!r} needs a modality, units pixels|fraction and rectangles")
    boxes = []
    for box in rectangles:
        if len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
            raise ConfigError(f"mask rule {rule_id!r}: a rectangle is [left, top, right, bottom]")
        left, top, right, bottom = (float(v) for v in box)
        limit = 1.0 if units == "fraction" else float("inf")
        if not (0 <= left < right <= limit and 0 <= top < bottom <= limit):
            raise ConfigError(f"mask rule {rule_id!r}: empty or out-of-range rectangle")
        boxes.append((left, top, right, bottom))
    return MaskRule(
        id=rule_id,
        modality=str(raw["modality"]).strip().upper(),
        manufacturer=raw.get("manufacturer"),
        model=raw.get("model"),
        rows=raw.get("rows"),
        columns=raw.get("columns"),
        fraction=units == "fraction",
        rectangles=tuple(boxes),
    )


def mask_rectangles(
    ds: Dataset, mask_rules_path: str | Path | None = None
) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles [left, top, right, bottom) to blank for this object, from the most specific
    matching rules (ties are all applied); raises PixelCleaningError("no_mask_rule") when none match."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    manufacturer = _norm(ds.get("Manufacturer", ""))
    model = _norm(ds.get("ManufacturerModelName", ""))
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    candidates = [
        r for r in load_mask_rules(mask_rules_path) if r.matches(modality, manufacturer, model, rows, columns)
    ]
    if not candidates or not rows or not columns:
        raise PixelCleaningError("no_mask_rule", f"no mask rule for modality {modality or 'absent'}")
    best = max(r.specificity for r in candidates)
    return [box for r in candidates if r.specificity == best for box in r.pixel_boxes(rows, columns)]


def clean_pixel_data(ds: Dataset, mask_rules_path: str | None = None, *, ocr: bool = False) -> str:
    """Blank the burned-in text rectangles in every frame, in place, and return "masked".

    Pixel data is rewritten native (Explicit VR Little Endian); YBR data decoded to RGB is
    labelled RGB; bits above Bits Stored are cleared (no overlay can hide there). With
    ``ocr=True`` every masked frame is read by OCR (the ``[ocr]`` extra) and any text matching
    the object's own identifiers or identifier-like patterns raises ``ocr_text_found``.
    Burned In Annotation becomes NO only after all of that succeeded.
    """
    if 0x00420011 in ds:
        raise PixelCleaningError("encapsulated_document", "encapsulated documents cannot be masked")
    if "PixelData" not in ds:
        code = "unsupported_pixel_format" if any(t in ds for t in _PIXEL_TAGS) else "no_pixel_data"
        raise PixelCleaningError(code, "only (7FE0,0010) Pixel Data can be masked")
    syntax = _transfer_syntax(ds)
    if syntax not in _DECODABLE_SYNTAXES:
        raise PixelCleaningError(
            "unsupported_transfer_syntax", f"cannot decode transfer syntax {syntax or 'absent'}"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    bits_allocated, bits_stored = ds.get("BitsAllocated"), ds.get("BitsStored")
    if photometric not in _PHOTOMETRICS or bits_allocated not in (8, 16) or not bits_stored:
        raise PixelCleaningError(
            "unsupported_pixel_format",
            f"photometric {photometric or 'absent'}, bits allocated {bits_allocated}",
        )
    boxes = mask_rectangles(ds, mask_rules_path)
    frames = _decode_frames(ds)
    for left, top, right, bottom in boxes:
        frames[:, top:bottom, left:right, :] = 0
    if frames.dtype.kind == "u" and bits_stored < bits_allocated:
        frames &= np.asarray((1 << bits_stored) - 1, dtype=frames.dtype)
    if ocr:
        from lakehouse.deid import ocr as ocr_module

        ocr_module.verify_no_identifying_text(frames, ocr_module.header_identifiers(ds))
    _write_back(ds, frames, photometric, syntax)
    return "masked"


def _decode_frames(ds: Dataset) -> np.ndarray:
    """All frames as (frames, rows, columns, samples); YBR is converted to RGB by pydicom."""
    from pydicom.pixels import pixel_array

    try:
        arr = pixel_array(ds)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means we cannot mask with certainty
        raise PixelCleaningError(
            "undecodable", f"pixel data could not be decoded ({type(exc).__name__})"
        ) from None
    frames, rows, columns = int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if arr.size != frames * rows * columns * samples:
        raise PixelCleaningError("undecodable", "decoded pixel data does not match the image pixel module")
    arr = arr.reshape(frames, rows, columns, samples)
    return arr if arr.flags.writeable else arr.copy()


def _write_back(ds: Dataset, frames: np.ndarray, photometric: str, syntax: str) -> None:
    from pydicom.pixels import set_pixel_data

    number_of_frames = ds.get("NumberOfFrames")
    samples = frames.shape[-1]
    arr = frames[..., 0] if samples == 1 else frames
    if arr.shape[0] == 1:
        arr = arr[0]
    new_photometric = "RGB" if photometric.startswith("YBR") else photometric
    try:  # validates everything before it changes the dataset
        set_pixel_data(ds, arr, new_photometric, int(ds.BitsStored), generate_instance_uid=False)
    except (ValueError, AttributeError, NotImplementedError) as exc:
        raise PixelCleaningError(
            "unsupported_pixel_format", f"cannot re-encode ({type(exc).__name__})"
        ) from None
    for tag in (0x7FE00001, 0x7FE00002):  # extended offset table: only meaningful when encapsulated
        if tag in ds:
            del ds[tag]
    if number_of_frames is not None:  # keep Type 1 Number of Frames on multi-frame IODs, even at 1
        ds.NumberOfFrames = number_of_frames
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if syntax == JPEGBaseline8Bit:  # once lossy, always lossy (PS3.3 C.7.6.1.1.5)
        ds.LossyImageCompression = "01"
        if "LossyImageCompressionMethod" not in ds:
            ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.BurnedInAnnotation = "NO"


def _transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""


def _norm(value: object) -> str:
    return " ".join(str(value or "").split()).upper()
