"""Issue 14: a catalog sync pays only for what it runs (lazy imports), reads a local archive in
a second process where that can pay, and catalogs exactly what it did before."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from lakehouse import lake
from lakehouse.catalog import headers, sync_catalog
from lakehouse.catalog import sync as catalog_sync
from lakehouse.config import Settings, load_settings
from lakehouse.dicom import header
from lakehouse.synth import synthesize_archive

# What no catalog command and no --help may import (pandas comes with pyarrow's first
# Python-to-Arrow conversion in a sync, so only --help is held to it).
NEVER = ("highdicom", "great_expectations", "pyspark", "lakehouse.datasets", "lakehouse.export",
         "lakehouse.deid", "lakehouse.quality", "lakehouse.flatten", "boto3")
_REPORT = """
import sys
from lakehouse.cli import main
sys.argv = ["lakehouse", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)))
"""


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    env = {**os.environ, "LAKEHOUSE_NO_PROGRESS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _REPORT, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout
    return set(out.rsplit("MODULES ", 1)[1].split())


def _loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


def test_help_imports_no_domain_stack(tmp_path: Path) -> None:
    modules = _modules_after(["--help"], tmp_path)
    assert _loaded(modules, (*NEVER, "pandas", "pydicom", "pyarrow", "deltalake")) == []


def test_catalog_sync_imports_only_the_catalog_side(local_root: Path) -> None:
    synthesize_archive(local_root / "archive", patients=1, seed=3)
    modules = _modules_after(["catalog", "sync"], local_root)
    assert "lakehouse.catalog.sync" in modules
    assert _loaded(modules, NEVER) == []


@pytest.mark.parametrize("package", ["lakehouse.governance", "lakehouse.datasets", "lakehouse.catalog"])
def test_lazy_exports_are_the_modules_objects(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)  # resolves (a constant has no module to compare with)
        if hasattr(value, "__module__") and hasattr(value, "__qualname__"):
            assert value.__module__.startswith(package + "."), name
            assert getattr(importlib.import_module(value.__module__), value.__name__) is value, name


def test_fast_path_tags_are_the_dictionarys() -> None:
    assert {k: tag for k, (tag, _) in header._FIELDS.items()} == {k: tag_for_keyword(k) for k in header._FIELDS}


def _rows(settings: Settings) -> dict[str, dict]:
    rows = lake.table(settings, "catalog").read().to_pylist()
    return {r["key"]: {k: v for k, v in r.items() if k != "scanned_at"} for r in rows}


def test_a_worker_process_catalogs_what_one_process_does(
    local_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = local_root / "archive"
    synthesize_archive(archive, patients=2, seed=11)
    (archive / "junk.bin").write_bytes(b"not dicom at all")
    (archive / "link.dcm").symlink_to(next(archive.rglob("*.dcm")))
    uncapped = {"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "0", "LAKEHOUSE_THROTTLE_BYTES_PER_SECOND": "0"}
    alone = load_settings(
        local_root / "lakehouse.toml", env={**uncapped, "LAKEHOUSE_RESTRICTED_URI": str(tmp_path / "alone")}
    )
    shared = load_settings(local_root / "lakehouse.toml", env=uncapped)

    monkeypatch.setattr(catalog_sync, "local_archive", lambda settings: None)
    one = sync_catalog(alone)
    monkeypatch.undo()
    monkeypatch.setattr(headers, "WORKER_MIN_OBJECTS", 1)
    monkeypatch.setattr(headers, "CHUNK", 2)
    pools = []
    close = headers.SharedReads.close
    monkeypatch.setattr(headers.SharedReads, "close", lambda self: (pools.append(self.pool), close(self))[1])
    two = sync_catalog(shared)

    assert pools and pools[0] is not None  # the worker ran
    assert {k: v for k, v in two.to_dict().items() if k != "seconds"} == {
        k: v for k, v in one.to_dict().items() if k != "seconds"
    }
    assert _rows(shared) == _rows(alone)


def _die(local: headers.LocalArchive, infos: list) -> list:
    os._exit(3)  # a worker process that dies (out of memory, a script re-running itself...)


def test_a_dead_worker_only_slows_the_sync(local_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthesize_archive(local_root / "archive", patients=1, seed=12)
    settings = load_settings(
        local_root / "lakehouse.toml",
        env={"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "0", "LAKEHOUSE_THROTTLE_BYTES_PER_SECOND": "0"},
    )
    monkeypatch.setattr(headers, "WORKER_MIN_OBJECTS", 1)
    monkeypatch.setattr(headers, "CHUNK", 1)
    monkeypatch.setattr(headers, "read_chunk", _die)
    broken = []
    close = headers.SharedReads.close
    monkeypatch.setattr(headers.SharedReads, "close", lambda self: (broken.append(self.broken), close(self))[1])
    result = sync_catalog(settings)
    assert broken == [True]
    assert result.read == result.added == len(_rows(settings)) > 0 and result.failed == 0


def test_a_throttle_cap_keeps_the_sync_in_one_process(local_root: Path) -> None:
    capped = load_settings(local_root / "lakehouse.toml", env={"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "500"})
    uncapped = load_settings(
        local_root / "lakehouse.toml",
        env={"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "0", "LAKEHOUSE_THROTTLE_BYTES_PER_SECOND": "0"},
    )
    assert headers.local_archive(capped) is None
    assert (headers.local_archive(uncapped) is None) == ((os.cpu_count() or 1) < 2)
