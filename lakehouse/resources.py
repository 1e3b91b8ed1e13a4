"""The one loader of packaged data: everything under the checkout's top-level ``schemas/``.

``schemas/`` stays the one source; the build maps it to the package
``lakehouse.schemas`` (``setup.py``), so a wheel carries it as package data and an
editable install reads the checkout's folder. Every module reads table schemas,
de-identification tables, policies and suites through here, never through a path
computed from ``__file__``, so the installed wheel and the checkout behave the same.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

PACKAGE = "lakehouse.schemas"


def schema_file(*parts: str) -> Traversable:
    """The packaged file or folder ``schemas/<parts>`` (it may not exist; see ``has_file``)."""
    node = files(PACKAGE)
    for part in parts:
        node = node / part
    return node


def has_file(*parts: str) -> bool:
    return schema_file(*parts).is_file()


def read_text(*parts: str) -> str:
    return schema_file(*parts).read_text(encoding="utf-8")


def read_json(*parts: str) -> Any:
    return json.loads(read_text(*parts))


def iter_files(folder: str, suffix: str = ".json") -> list[Traversable]:
    """The files in ``schemas/<folder>`` ending in ``suffix``, sorted by name."""
    found = [f for f in schema_file(folder).iterdir() if f.is_file() and f.name.endswith(suffix)]
    return sorted(found, key=lambda f: f.name)
