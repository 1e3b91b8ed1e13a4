"""Typing DICOM element values for tables: tolerant of real-world values, never crashing.

Rules (PS3.5 §6.2 value representations):

* DA ``YYYYMMDD`` (or the retired ``YYYY.MM.DD``) → ``datetime.date``; partial or
  invalid dates → ``None``.
* DT ``YYYYMMDD[HH[MM[SS[.F{1,6}]]]][&ZZXX]`` → timezone-aware ``datetime`` in UTC; a
  value without offset is taken as UTC; fewer than 8 date digits or invalid → ``None``.
* TM stays text (as stored, without padding).
* DS/IS and the binary numbers (US, SS, UL, SL, UV, SV, FL, FD) → float / int; bad or
  non-finite numbers → ``None``.
* PN → its DICOM text form (``Family^Given``).
* Binary VRs (OB, OW, OD, OF, OL, OV, UN) are never rendered as text.

Values read with pydicom's default (warn) validation can arrive as plain strings
even for numeric VRs, so every parser here works from ``str``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, MutableSequence
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from struct import unpack
from typing import Any

from pydicom import config
from pydicom.charset import default_encoding, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.hooks import hooks, raw_element_value, raw_element_vr
from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat

from lakehouse.errors import LakeError

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
INTEGER_VRS = frozenset({"IS", "US", "SS", "UL", "SL", "UV", "SV", "US or SS"})
FLOAT_VRS = frozenset({"DS", "FL", "FD"})
NUMERIC_VRS = INTEGER_VRS | FLOAT_VRS

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT = re.compile(
    r"^(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
    r"(?:(?P<H>\d{2})(?:(?P<M>\d{2})(?:(?P<S>\d{2})(?:\.(?P<F>\d{1,6}))?)?)?)?"
    r"(?P<tz>[+-]\d{4})?$"
)


def element_values(elem: DataElement) -> list[Any]:
    """The element's values as a list (empty when the element has no value)."""
    return listed_values(elem.value)


def listed_values(value: Any) -> list[Any]:
    """``element_values`` of an element whose value is ``value``."""
    if isinstance(value, str):  # most values: checked first as this runs for every element
        return [value] if value else []
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [v for v in value if v is not None and v != ""]
    if isinstance(value, bytes) and not value:
        return []
    return [value]


def parse_da(text: Any) -> date | None:
    """DA → date; anything else (partial, out of range, garbage) → None."""
    match = _DA.match(str(text).strip())
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def parse_dt(text: Any) -> datetime | None:
    """DT → aware UTC datetime; needs at least the full date; no offset means UTC."""
    match = _DT.match(str(text).strip())
    if match is None:
        return None
    tz = UTC
    if match["tz"]:
        sign = -1 if match["tz"][0] == "-" else 1
        hours, minutes = int(match["tz"][1:3]), int(match["tz"][3:5])
        if hours > 14 or minutes > 59:
            return None
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        value = datetime(
            int(match["Y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
            int((match["F"] or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return value.astimezone(UTC)


def parse_float(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value if isinstance(value, int | float) else str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_int(value: Any, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    """An integer within [low, high], or None. ``"3.0"`` counts as 3; ``"3.5"`` does not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number: int | None = int(value)
    else:
        text = str(value).strip()
        try:
            number = int(text)
        except ValueError:
            as_float = parse_float(text)
            number = int(as_float) if as_float is not None and as_float.is_integer() else None
    if number is None or not low <= number <= high:
        return None
    return number


def value_text(elem: DataElement) -> str | None:
    """Text of a non-binary, non-sequence element; multiple values joined by backslash."""
    if elem.VR in BINARY_VRS or elem.VR == "SQ":
        return None
    return values_text(elem.VR, element_values(elem))


def values_text(vr: str, values: list[Any]) -> str | None:
    """``value_text`` from the element's VR and its ``element_values`` (taken once by callers
    that need them for several columns)."""
    if vr in BINARY_VRS or vr == "SQ" or not values:
        return None
    if vr == "AT":
        return "\\".join(f"{int(v):08X}" for v in values)
    if len(values) == 1:
        value = values[0]
        return value.strip() if value.__class__ is str else _text(value)  # str: most values
    return "\\".join(_text(v) for v in values)


def value_number(elem: DataElement) -> float | None:
    """First value of a numeric element as float; None for other VRs or bad numbers."""
    if elem.VR not in NUMERIC_VRS:
        return None
    return values_number(elem.VR, element_values(elem))


def values_number(vr: str, values: list[Any]) -> float | None:
    """``value_number`` from the element's VR and its ``element_values``."""
    if vr not in NUMERIC_VRS or not values:
        return None
    return parse_float(values[0])


def value_count(elem: DataElement) -> int:
    """Number of values: items for a sequence, 1 for a non-empty binary value."""
    if elem.VR == "SQ":
        return len(elem.value or ())
    if elem.VR in BINARY_VRS:
        return 0 if elem.is_empty else 1
    return len(element_values(elem))


def typed_value(elem: DataElement, column_type: str) -> Any:
    """The element's value converted to a table column type (see lakehouse.lake.schemas).

    ``list<T>`` keeps every value (bad ones become None); a scalar numeric, date or
    timestamp column takes the first value; a scalar string column joins values with
    a backslash, as DICOM stores them.
    """
    return typed_values(elem.VR, element_values(elem), column_type)


def typed_values(vr: str, values: list[Any], column_type: str) -> Any:
    """``typed_value`` from the element's VR and its ``element_values``."""
    if vr in BINARY_VRS or vr == "SQ" or not values:
        return None
    if column_type.startswith("list<") and column_type.endswith(">"):
        inner = column_type[5:-1]
        return [_scalar(v, vr, inner) for v in values]
    if column_type == "string":
        return values_text(vr, values)
    return _scalar(values[0], vr, column_type)


def _text(value: Any) -> str:
    # DS values keep their stored text (pydicom's DSfloat repr would add quotes);
    # binary floats (FL/FD) print as the shortest text that round-trips.
    if isinstance(value, float) and not isinstance(value, DSfloat):
        return repr(value)
    return str(value).strip()


def _scalar(value: Any, vr: str, column_type: str) -> Any:
    if column_type == "string":
        return _text(value)
    if column_type == "double":
        return parse_float(value)
    if column_type == "int64":
        return parse_int(value)
    if column_type == "int32":
        return parse_int(value, low=INT32_MIN, high=INT32_MAX)
    if column_type == "date":
        if vr == "DT":
            moment = parse_dt(value)
            return moment.date() if moment else None
        return parse_da(value)
    if column_type == "timestamp":
        if vr == "DA":
            day = parse_da(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
        return parse_dt(value)
    if column_type == "bool":
        text = str(value).strip().upper()
        return {"YES": True, "Y": True, "NO": False, "N": False}.get(text)
    raise LakeError(f"column type {column_type!r} cannot hold a DICOM value")


# Reading raw elements without pydicom's conversion
# --------------------------------------------------
# ``Dataset.__getitem__`` converts a raw element (hooks, VR lookup, converter dispatch,
# value classes, validation) and stores the result: most of flatten's time when done for
# every element. ``raw_value`` decodes the common, plain cases itself, giving values that
# every function of this module (and lakehouse.dicom.json) treats exactly as pydicom's;
# anything else returns None and the caller converts the element the usual way.

# pydicom's codec names under which ASCII bytes decode as ASCII (default, ISO_IR 100, 192).
_ASCII_CODECS = frozenset({default_encoding, python_encoding["ISO_IR 100"], python_encoding["ISO_IR 192"]})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
_NUMBER_SIZES = {vr: {"H": 2, "h": 2, "L": 4, "l": 4, "Q": 8, "q": 8, "f": 4, "d": 8}[f] for vr, f in _NUMBER_FORMATS.items()}
# Converters by kind: pydicom's convert_string (and DA/DT/TM without datetime_conversion),
# convert_text (charset), convert_single_string (charset), convert_AE_string, convert_UI,
# convert_UR_string, convert_DS_string, convert_IS_string.
_SPLIT_VRS = frozenset({"AS", "CS", "DA", "DT", "TM"})
_CHARSET_SPLIT_VRS = frozenset({"LO", "SH", "UC"})
_CHARSET_SINGLE_VRS = frozenset({"LT", "ST", "UT"})
_CHARSET_VRS = _CHARSET_SPLIT_VRS | _CHARSET_SINGLE_VRS
_TEXT_RAW_VRS = _SPLIT_VRS | _CHARSET_VRS | {"AE", "UI", "UR", "DS", "IS"}
_RAW_VRS = _TEXT_RAW_VRS | frozenset(_NUMBER_FORMATS)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# LUT descriptors, whose first value pydicom reads as unsigned whatever the VR says (PS3.3
# C.11.1.1.1): (0028,1101-1103) palette color descriptors and (0028,3002) LUT Descriptor.
_LUT_DESCRIPTOR_INTS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
_EXACT_INT = 2**53  # an IS beyond this is not equal to its float: pydicom makes it an ISfloat


def raw_values_enabled() -> bool:
    """Whether pydicom converts raw elements the default way (no callbacks or custom hooks,
    no numpy/Decimal/datetime value classes, empty text as "", validation not raising),
    which ``raw_value`` assumes."""
    return (
        config.data_element_callback is None
        and hooks.raw_element_vr is raw_element_vr
        and hooks.raw_element_value is raw_element_value
        and not hooks.raw_element_kwargs
        and not (config.use_DS_decimal or config.use_DS_numpy or config.use_IS_numpy)
        and not config.datetime_conversion
        and not config.use_none_as_empty_text_VR_value
        and config.settings.reading_validation_mode != config.RAISE
    )


def raw_value(raw: RawDataElement, encoding: str | MutableSequence[str]) -> tuple[str, Any] | None:
    """``(VR, value)`` of a raw little-endian element of a standard (even group) attribute
    with a text or binary-number VR, as pydicom's conversion gives it (``encoding``: the
    dataset's, as ``Dataset.__getitem__`` passes it), or None when pydicom must convert it.

    Text is decoded only when it is ASCII without ESC, and charset VRs (LO, SH, UC, LT, ST,
    UT) only in the default, Latin-1 or UTF-8 character set, so every codec reads it alike.
    Two values stay text where pydicom makes objects that every function here reads the
    same way: a DS as its stripped text (DSfloat), a UI as a str (UID). A DS that is not a
    number, an IS that is not an exact integer, a wrong-length number, an empty-looking DS
    or IS value and LUT descriptors all take pydicom's conversion."""
    value = raw.value
    tag = int(raw.tag)  # plain int: BaseTag's == (dict and set lookups) is Python code
    if (
        value is None
        or not raw.is_little_endian
        or raw.length == _UNDEFINED_LENGTH
        or raw.length != len(value)
        or (tag >> 16) & 1
    ):
        return None
    vr = raw.VR
    if vr is None:  # implicit VR: pydicom takes the dictionary's
        vr = _dictionary_vr(tag)
    if vr not in _RAW_VRS:
        return None
    if not value:
        return vr, ("" if vr in _TEXT_RAW_VRS and vr not in ("DS", "IS") else None)
    if vr in _NUMBER_FORMATS:
        return _raw_numbers(tag, vr, value)
    if not value.isascii() or b"\x1b" in value:
        return None
    if vr in _CHARSET_VRS:
        first = encoding if isinstance(encoding, str) else (encoding[0] if encoding else default_encoding)
        if first not in _ASCII_CODECS:
            return None
    text = value.decode("ascii")
    if vr in _SPLIT_VRS:
        return vr, _one_or_list(text.rstrip(" \x00").split("\\"))
    if vr in _CHARSET_SPLIT_VRS:
        return vr, _one_or_list([v.rstrip("\x00 ") for v in text.split("\\")])
    if vr in _CHARSET_SINGLE_VRS:
        return vr, text.rstrip("\x00 ")
    if vr == "UI":
        return vr, _one_or_list([v.strip() for v in text.rstrip("\x00 ").split("\\")])
    if vr == "AE":
        return vr, _one_or_list([v.strip() for v in text.split("\\")])
    if vr == "UR":
        return vr, text.rstrip()
    numbers = _raw_number_texts(text.strip(), _plain_decimal) if vr == "DS" else _raw_number_texts(text, _plain_integer)
    return None if numbers is None else (vr, _one_or_list(numbers))


def _raw_numbers(tag: int, vr: str, value: bytes) -> tuple[str, Any] | None:
    count, rest = divmod(len(value), _NUMBER_SIZES[vr])
    if rest or tag in _LUT_DESCRIPTOR_INTS:  # pydicom: wrong length → UN; LUT fix-up
        return None
    numbers = unpack(f"<{count}{_NUMBER_FORMATS[vr]}", value)
    return vr, numbers[0] if count == 1 else list(numbers)


def _raw_number_texts(text: str, plain: Callable[[str], bool]) -> list[str] | None:
    """DS or IS items as pydicom's DSfloat/IS keep their text (stripped), or None when an item
    is blank but not empty, or not ``plain`` (then pydicom converts)."""
    items = text.rstrip(" \x00").split("\\")
    for index, item in enumerate(items):
        if not item.strip():
            if item:
                return None
            continue
        if not plain(item):
            return None
        items[index] = item.strip()
    return items


def _plain_decimal(item: str) -> bool:
    try:
        float(item)
    except ValueError:
        return False
    return True


def _plain_integer(item: str) -> bool:
    """An integer whose text reads as the same float (exact, and not a negative zero)."""
    try:
        number = int(item)
    except ValueError:
        return False
    return -_EXACT_INT <= number <= _EXACT_INT and not (not number and "-" in item)  # -0 reads as -0.0


def _one_or_list(items: list[str]) -> str | list[str]:
    return items[0] if len(items) == 1 else items


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None
