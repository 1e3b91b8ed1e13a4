"""What the de-identification and DICOM packages may touch (DESIGN: deid imports only dicom,
receives its key and reads no settings or storage; no private pydicom API anywhere)."""

from __future__ import annotations

import ast
from pathlib import Path

import lakehouse

PACKAGE = Path(lakehouse.__file__).parent
SHARED = {"lakehouse.errors", "lakehouse.resources"}  # leaf modules every package may use
PRIVATE_PYDICOM = {"_dict", "_character_set", "_parent_encoding", "_read_charset", "_pixel_array"}


def lakehouse_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lakehouse"):
            found |= {node.module} if node.module != "lakehouse" else {f"lakehouse.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lakehouse")}
    return found


def foreign(package: str, allowed: set[str]) -> dict[str, set[str]]:
    out = {}
    for path in sorted((PACKAGE / package).glob("*.py")):
        bad = {m for m in lakehouse_imports(path) - SHARED if not any(m.startswith(a) for a in allowed)}
        if bad:
            out[path.name] = bad
    return out


def test_deid_imports_only_dicom() -> None:
    assert foreign("deid", {"lakehouse.deid", "lakehouse.dicom"}) == {}


def test_dicom_imports_no_stage() -> None:
    assert foreign("dicom", {"lakehouse.dicom"}) == {}


def test_no_private_pydicom_dataset_api() -> None:
    uses = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_PYDICOM
    ]
    assert uses == []
