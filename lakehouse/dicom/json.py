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
from collections.abc import Callable, MutableSequence
from functools import lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement

from lakehouse.dicom.values import (
    BINARY_VRS,
    FLOAT_VRS,
    INTEGER_VRS,
    listed_values,
    parse_float,
    parse_int,
    raw_value,
    raw_values_enabled,
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


def _is_bulk(tag: int, vr: str, elem: DataElement | None) -> bool:
    if tag in _BULK_TAGS:
        return True
    group, element = tag >> 16, tag & 0xFFFF
    if 0x6000 <= group <= 0x601E and group % 2 == 0 and element == 0x3000:  # Overlay Data
        return True
    if 0x5000 <= group <= 0x501E and group % 2 == 0 and element in (0x3000, 0x200C):  # Curve/Audio
        return True
    if vr in BINARY_VRS and elem is not None and not elem.is_empty:
        return len(elem.value) > BULK_DATA_THRESHOLD
    return False


ElementVisitor = Callable[[int, str, str, int, str, bool, list[Any], int], None]
"""Called for every element, parents before their items, in tag order:
``(tag, tag_key, path, depth, vr, bulk, values, count)`` with ``tag`` as int. ``path`` is ``GGGGEEEE`` at
the top and ``<sequence path>[<item index>].GGGGEEEE`` below it; ``values`` is ``element_values(elem)``
(empty for sequences and binary VRs); ``count`` is ``value_count(elem)``."""

# Text VRs whose DICOM JSON is their value(s) as they are (pydicom's generic branch).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})


def to_json_dict(ds: Dataset, visit: ElementVisitor | None = None) -> dict[str, Any]:
    """The DICOM JSON model of ``ds`` as a dict keyed by ``GGGGEEEE`` (``to_json`` read back)."""
    result: dict[str, Any] = json.loads(to_json(ds, visit))
    return result


def to_json(ds: Dataset, visit: ElementVisitor | None = None) -> str:
    """Deterministic DICOM JSON text of ``ds`` without bulk data.

    ``visit`` sees every element at every depth during the same walk, so callers that
    need per-element facts as well (flatten's attribute rows) read each element once.

    The text is what ``json.dumps(model, sort_keys=True, separators=(",", ":"),
    allow_nan=False, ensure_ascii=False)`` gives for the JSON model, written element by
    element as the walk goes (tags come in sorted order; ``Value`` sorts before ``vr``),
    which saves building the model and sorting it. Elements are read as stored: a raw
    element that ``raw_value`` can decode is decoded on the side and stays raw in ``ds``;
    any other is converted (and stored) by pydicom."""
    refused: list[Exception] = []
    text = _dataset_json(ds, "", 0, visit, raw_values_enabled(), refused)
    if refused:  # as json.dumps of the whole model would, once every element was read
        raise refused[0]
    return text


@lru_cache(maxsize=16384)
def _tag_facts(tag: int) -> tuple[str, str, bool]:
    """``GGGGEEEE``, its JSON key prefix, and whether the tag alone makes the element bulk."""
    key = f"{tag:08X}"
    return key, f'"{key}":', _is_bulk(tag, "", None)


def _dataset_json(
    ds: Dataset,
    prefix: str,
    depth: int,
    visit: ElementVisitor | None,
    decode_raw: bool,
    refused: list[Exception],
) -> str:
    out: list[str] = []
    encoding: str | MutableSequence[str] | None = None  # the dataset's, once a raw element needs it
    # Sorting plain ints: BaseTag's comparisons are Python code (this is Dataset.__iter__'s order).
    for tag, stored in sorted([(int(tag), stored) for tag, stored in ds.items()]):
        elem: DataElement | None = None
        decoded = None
        if isinstance(stored, RawDataElement):
            if decode_raw:
                if encoding is None:  # what Dataset.__getitem__ decodes with (set on every dataset read)
                    encoding = ds.original_character_set
                decoded = raw_value(stored, encoding) if encoding else None
            if decoded is None:
                elem = ds[tag]  # pydicom's conversion, stored in ds
        else:
            elem = stored
        if decoded is not None:
            vr, value = decoded
        else:
            assert elem is not None
            vr = elem.VR
            if vr.__class__ is not str:
                vr = str(vr)
            value = elem.value
        key, json_key, bulk = _tag_facts(tag)
        if not bulk and vr in BINARY_VRS:
            bulk = _is_bulk(tag, vr, elem)
        if vr == "SQ":
            items = value or ()
            path = prefix + key
            if visit is not None:
                visit(tag, key, path, depth, vr, bulk, [], len(items))
            nested = [
                _dataset_json(item, f"{path}[{index}].", depth + 1, visit, decode_raw, refused)
                for index, item in enumerate(items)
            ]
            out.append(json_key + (_EMPTY % _str(vr) if bulk else _VALUE % (",".join(nested), _str(vr))))
            continue
        if vr in BINARY_VRS:
            values: list[Any] = []
            count = 0 if elem is None or elem.is_empty else 1
        else:
            values = listed_values(value)
            count = len(values)
        if visit is not None:
            visit(tag, key, prefix + key, depth, vr, bulk, values, count)
        out.append(json_key + (_EMPTY % _str(vr) if bulk else _leaf_json(elem, vr, value, values, refused)))
    return "{" + ",".join(out) + "}"


_str = json.encoder.encode_basestring  # as json.dumps(..., ensure_ascii=False) writes a str
_VALUE = '{"Value":[%s],"vr":%s}'
_EMPTY = '{"vr":%s}'


def _leaf_json(
    elem: DataElement | None, vr: str, value: Any, values: list[Any], refused: list[Exception]
) -> str:
    """An element's DICOM JSON text; ``elem`` is None for a raw element decoded by
    ``raw_value`` (a text or number VR), else its (converted) element."""
    if vr in INTEGER_VRS or vr in FLOAT_VRS:
        if not values:
            return _EMPTY % _str(vr)
        parse = parse_int if vr in INTEGER_VRS else parse_float
        return _VALUE % (",".join(_number(parse(v)) for v in values), _str(vr))
    if vr in _TEXT_VRS:
        if isinstance(value, str):  # the common case, as pydicom writes it
            return _VALUE % (_str(value), _str(vr)) if value else _EMPTY % _str(vr)
        if elem is None:  # several values, as pydicom writes them (empty ones too)
            return _VALUE % (",".join(map(_str, value)), _str(vr))
    assert elem is not None
    try:
        model = elem.to_json_dict(None, BULK_DATA_THRESHOLD)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DicomParseError(
            "json_encode", f"attribute {int(elem.tag):08X} ({vr}) cannot be written as DICOM JSON"
        ) from exc
    try:
        return json.dumps(model, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        refused.append(exc)
        return "null"


def _number(number: float | None) -> str:
    """A parsed number as json.dumps writes it (``parse_int``/``parse_float`` give no NaN)."""
    if number is None:
        return "null"
    return int.__repr__(number) if isinstance(number, int) else float.__repr__(number)
