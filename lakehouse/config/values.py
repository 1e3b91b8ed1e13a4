"""Checking one setting's value against its field: type, bounds, choices.

Messages name where the value came from (``<file>: [export] workers`` or
``LAKEHOUSE_EXPORT_WORKERS``) and what was expected, never the value itself:
a mistyped value may be a secret.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from typing import Any

from lakehouse.errors import ConfigError

NAMES = tuple[str, ...]

_EXPECTED = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    NAMES: 'a list of names, like ["alice", "bob"]',
}


def check_value(value: Any, kind: Any, bounds: Mapping[str, Any], where: str) -> Any:
    """``value`` as the field's type ``kind`` (ints widen to floats, lists become tuples)."""
    typed = _typed(value, kind)
    if typed is None:
        raise ConfigError(f"{where} must be {_EXPECTED[kind]}, not {_describe(value)}")
    if "min" in bounds and typed < bounds["min"]:
        raise ConfigError(f"{where} must be at least {bounds['min']}")
    if "max" in bounds and typed > bounds["max"]:
        raise ConfigError(f"{where} must be at most {bounds['max']}")
    if "choices" in bounds and typed not in bounds["choices"]:
        raise ConfigError(f"{where} must be one of {', '.join(bounds['choices'])}")
    if "placeholders" in bounds and _placeholders(typed) != set(bounds["placeholders"]):
        wanted = ", ".join("{" + name + "}" for name in bounds["placeholders"])
        raise ConfigError(f"{where} must contain {wanted} and no other {{...}} field")
    return typed


def parse_env_value(raw: str, kind: Any, bounds: Mapping[str, Any], where: str) -> Any:
    """An env override: text as is for text settings, otherwise a TOML value
    (``12.5``, ``true``, ``["bob"]``); a list may also be written ``bob,carol``."""
    if kind is str:
        return check_value(raw, kind, bounds, where)
    try:
        value: Any = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
        if kind == NAMES:
            value = [item.strip() for item in raw.split(",") if item.strip()]
    return check_value(value, kind, bounds, where)


def _typed(value: Any, kind: Any) -> Any:
    if kind is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    if kind is float:
        return float(value) if isinstance(value, int | float) else None
    if kind is str:
        return value if isinstance(value, str) else None
    if kind == NAMES:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        return tuple(value) if ok else None
    raise TypeError(f"no check for settings of type {kind!r}")


def _placeholders(template: str) -> set[str] | None:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # an unbalanced brace
        return None


def _describe(value: Any) -> str:
    if isinstance(value, list):
        odd = next((item for item in value if not isinstance(item, str)), None)
        return f"a list holding {_describe(odd)}" if value and odd is not None else "a list"
    for kind, name in ((bool, "true/false"), (int, "a whole number"), (float, "a number"), (str, "text")):
        if isinstance(value, kind):
            return name
    if isinstance(value, dict):
        return "a table"
    return "a date or time"
