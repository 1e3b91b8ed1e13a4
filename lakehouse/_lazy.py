"""PEP 562 lazy exports for package ``__init__`` modules.

A command imports only what it runs: ``from lakehouse import governance`` costs the package's
``__init__`` alone, and ``governance.append_audit`` imports ``governance.audit`` on first use.
Each package lists its exports once, as ``name → submodule`` (``"submodule:attr"`` for an alias),
and repeats them under ``TYPE_CHECKING`` so type checkers see real imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: imports an export's submodule on first use
    and caches the value in the package namespace (later lookups do not come back here)."""

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = where.partition(":")
        value = getattr(importlib.import_module(f"{package}.{module}"), attr or name)
        vars(importlib.import_module(package))[name] = value
        return value

    return __getattr__
