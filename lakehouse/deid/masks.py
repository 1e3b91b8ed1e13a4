"""Known-layout masks: the rectangles ``schemas/deid/masks.json`` names for a modality,
manufacturer, model and frame size (see ``schemas/deid/MASKS.md``).

They are the fast path of pixel cleaning: a scanner whose header band is known gets it blanked
before OCR looks at the frame, so OCR has less to find. They never decide alone that a frame is
clean; the OCR re-check does (``lakehouse.deid.pixels``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from lakehouse import resources
from lakehouse.errors import ConfigError

__all__ = ["DEFAULT_MASK_RULES", "MaskRule", "load_mask_rules", "mask_rectangles"]

DEFAULT_MASK_RULES = resources.schema_file("deid", "masks.json")

Box = tuple[int, int, int, int]


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

    def pixel_boxes(self, rows: int, columns: int) -> list[Box]:
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


def mask_rectangles(ds: Dataset, mask_rules_path: str | Path | None = None) -> list[Box]:
    """Pixel rectangles [left, top, right, bottom) to blank for this object, from the most specific
    matching rules (ties are all applied); empty when no rule matches (OCR then finds the text)."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    manufacturer = _norm(ds.get("Manufacturer", ""))
    model = _norm(ds.get("ManufacturerModelName", ""))
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    candidates = [
        r for r in load_mask_rules(mask_rules_path) if r.matches(modality, manufacturer, model, rows, columns)
    ]
    if not candidates or not rows or not columns:
        return []
    best = max(r.specificity for r in candidates)
    return [box for r in candidates if r.specificity == best for box in r.pixel_boxes(rows, columns)]


def _norm(value: object) -> str:
    return " ".join(str(value or "").split()).upper()
