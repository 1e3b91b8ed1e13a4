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
    tag = int(elem.tag)
    group, element = tag >> 16, tag & 0xFFFF
    if tag in _BULK_TAGS:
        return True
    if 0x6000 <= group <= 0x601E and group % 2 == 0 and element == 0x3000:  # Overlay Data
        return True
    if 0x5000 <= group <= 0x501E and group % 2 == 0 and element in (0x3000, 0x200C):  # Curve/Audio
        return True
    if elem.VR in BINARY_VRS and not elem.is_empty:
        return len(elem.value) > BULK_DATA_THRESHOLD
    return False


def to_json_dict(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON model of ``ds`` as a dict keyed by ``GGGGEEEE``."""
    out: dict[str, Any] = {}
    for elem in ds:
        out[f"{int(elem.tag):08X}"] = element_json(elem)
    return out


def to_json(ds: Dataset) -> str:
    """Deterministic DICOM JSON text of ``ds`` without bulk data."""
    return json.dumps(
        to_json_dict(ds), sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )


def element_json(elem: DataElement) -> dict[str, Any]:
    """One attribute in the DICOM JSON model."""
    vr = str(elem.VR)
    if is_bulk_data(elem):
        return {"vr": vr}
    if vr == "SQ":
        return {"vr": vr, "Value": [to_json_dict(item) for item in elem.value or ()]}
    if vr in INTEGER_VRS or vr in FLOAT_VRS:
        return _numbers_json(elem, vr)
    try:
        return elem.to_json_dict(None, BULK_DATA_THRESHOLD)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DicomParseError(
            "json_encode", f"attribute {int(elem.tag):08X} ({vr}) cannot be written as DICOM JSON"
        ) from exc


def _numbers_json(elem: DataElement, vr: str) -> dict[str, Any]:
    values = element_values(elem)
    if not values:
        return {"vr": vr}
    parse = parse_int if vr in INTEGER_VRS else parse_float
    return {"vr": vr, "Value": [parse(v) for v in values]}
