"""DICOM JSON (PS3.18 Annex F) of a dataset, without bulk data.

Bulk data is pixel data at any depth (including icon images), overlay, curve,
audio, waveform and spectroscopy data, encapsulated documents, and any other
binary value (OB, OW, OD, OF, OL, OV, UN) longer than ``BULK_DATA_THRESHOLD``
bytes. A bulk attribute keeps its tag and VR but carries no value and no
BulkDataURI: the JSON names what the object holds without copying it (the
object itself is elsewhere). Smaller binary values are written as InlineBinary.

Numbers that are not valid (a DS of ``"x"``, a NaN float) are written as null
rather than failing the whole header. Output is deterministic: keys sorted,
compact separators, UTF-8 text (not \\u-escaped), so the same dataset always gives the same bytes.
File meta information (group 0002) is not part of the dataset and is not written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement

from lakehouse.dicom.values import (
    BINARY_VRS,
    FLOAT_VRS,
    INTEGER_VRS,
    element_values,
    parse_float,
    parse_int,
)
from lakehouse.errors import DicomParseError

BULK_DATA_THRESHOLD = 1024

_BULK_TAGS = frozenset(
    {
        0x7FE00008,  # Float Pixel Data
        0x7FE00009,  # Double Float Pixel Data
        0x7FE00010,  # Pixel Data
        0x00420011,  # Encapsulated Document
        0x54001010,  # Waveform Data
        0x56000020,  # Spectroscopy Data
    }
)


def is_bulk_data(elem: DataElement) -> bool:
    """True for values that never go into header JSON or text columns."""
    return _is_bulk(int(elem.tag), elem.VR, elem)


def _is_bulk(tag: int, vr: str, elem: DataElement) -> bool:
    if tag in _BULK_TAGS:
        return True
    group, element = tag >> 16, tag & 0xFFFF
    if 0x6000 <= group <= 0x601E and group % 2 == 0 and element == 0x3000:  # Overlay Data
        return True
    if 0x5000 <= group <= 0x501E and group % 2 == 0 and element in (0x3000, 0x200C):  # Curve/Audio
        return True
    if vr in BINARY_VRS and not elem.is_empty:
        return len(elem.value) > BULK_DATA_THRESHOLD
    return False


ElementVisitor = Callable[[DataElement, int, str, str, int, str, bool, list[Any]], None]
"""Called for every element, parents before their items, in tag order:
``(elem, tag, tag_key, path, depth, vr, bulk, values)`` with ``tag`` as int. ``path`` is ``GGGGEEEE`` at the top and
``<sequence path>[<item index>].GGGGEEEE`` below it; ``values`` is ``element_values(elem)``
(empty for sequences and binary VRs)."""

# Text VRs whose DICOM JSON is their value(s) as they are (pydicom's generic branch).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


def to_json_dict(ds: Dataset, visit: ElementVisitor | None = None) -> dict[str, Any]:
    """The DICOM JSON model of ``ds`` as a dict keyed by ``GGGGEEEE``.

    ``visit`` sees every element at every depth during the same walk, so callers that
    need per-element facts as well (flatten's attribute rows) read each element once."""
    return _dataset_json(ds, "", 0, visit)


def to_json(ds: Dataset, visit: ElementVisitor | None = None) -> str:
    """Deterministic DICOM JSON text of ``ds`` without bulk data (``visit`` as in to_json_dict)."""
    return json.dumps(
        to_json_dict(ds, visit), sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )


def _dataset_json(ds: Dataset, prefix: str, depth: int, visit: ElementVisitor | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        tag = int(elem.tag)
        key = f"{tag:08X}"
        vr = str(elem.VR)
        bulk = _is_bulk(tag, vr, elem)
        values = [] if vr == "SQ" or vr in BINARY_VRS else element_values(elem)
        if visit is not None:
            visit(elem, tag, key, prefix + key, depth, vr, bulk, values)
        if vr == "SQ":
            path = prefix + key
            items = [
                _dataset_json(item, f"{path}[{index}].", depth + 1, visit)
                for index, item in enumerate(elem.value or ())
            ]
            out[key] = {"vr": vr} if bulk else {"vr": vr, "Value": items}
        elif bulk:
            out[key] = {"vr": vr}
        else:
            out[key] = _leaf_json(elem, vr, values)
    return out


def _leaf_json(elem: DataElement, vr: str, values: list[Any]) -> dict[str, Any]:
    if vr in INTEGER_VRS or vr in FLOAT_VRS:
        if not values:
            return {"vr": vr}
        parse = parse_int if vr in INTEGER_VRS else parse_float
        return {"vr": vr, "Value": [parse(v) for v in values]}
    value = elem.value
    if vr in _TEXT_VRS and isinstance(value, str):  # the common case, as pydicom writes it
        return {"vr": vr, "Value": [value]} if value else {"vr": vr}
    try:
        return elem.to_json_dict(None, BULK_DATA_THRESHOLD)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DicomParseError(
            "json_encode", f"attribute {int(elem.tag):08X} ({vr}) cannot be written as DICOM JSON"
        ) from exc
