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
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from pydicom.dataelem import DataElement
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
    value = elem.value
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
        return _text(values[0])
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
    if elem.VR in BINARY_VRS or elem.VR == "SQ":
        return None
    values = element_values(elem)
    if not values:
        return None
    if column_type.startswith("list<") and column_type.endswith(">"):
        inner = column_type[5:-1]
        return [_scalar(v, elem.VR, inner) for v in values]
    if column_type == "string":
        return value_text(elem)
    return _scalar(values[0], elem.VR, column_type)


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
