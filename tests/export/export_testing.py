"""Preparing approved requests over a synthetic archive for the export tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lakehouse.config import load_settings

ROLES = {"requesters": ["alice"], "approvers": ["bob", "carol"], "operators": ["olga"], "admins": ["root"]}
OPTIONS = ["retain-modified-dates", "clean-descriptors", "clean-structured-content", "clean-graphics"]
PROJECT = "lung-ai"


def prepare(config: Path, *, patients: int = 2, options: list[str] | None = None, project: str = PROJECT,
            synth_into: Path | None = None, seed: int = 11) -> str:
    """Synthesize (when a folder is given), catalog, submit as alice, approve as bob; returns the request id."""
    from lakehouse import governance
    from lakehouse.catalog import sync_catalog
    from lakehouse.export.keys import load_project_key
    from lakehouse.synth import synthesize_archive

    settings = load_settings(config, env={})
    if synth_into is not None:
        synthesize_archive(synth_into, patients=patients, seed=seed)
    sync_catalog(settings)
    request = governance.submit_request(
        settings, user="alice", project=project, title="Lung nodules", purpose="Train a nodule detector",
        protocol="IRB-2026-001", cohort={}, options=options if options is not None else OPTIONS,
    )
    governance.approve(settings, request.id, user="bob", expires=date.today() + timedelta(days=30))
    load_project_key(settings, project)  # created now, so copies of this root share it
    return request.id


TABLES = ("studies", "series", "instances", "attributes")


def read_table(root: Path, project: str, name: str) -> pl.DataFrame:
    return pl.read_delta(str(root / "research" / project / "tables" / name))


def comparable(df: pl.DataFrame) -> pl.DataFrame:
    """A table without its run-specific column, in a stable row order."""
    df = df.drop([c for c in ("export_run_id",) if c in df.columns])
    sortable = [c for c, t in df.schema.items() if t.is_numeric() or t == pl.String or t == pl.Date]
    return df.sort(sortable)


def objects(root: Path, project: str) -> dict[str, bytes]:
    base = root / "research" / project / "objects"
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*.dcm"))}


def lakehouse(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a real process (no fault injection unless ``env`` asks for it)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_FAULT")}
    return subprocess.run([sys.executable, "-m", "lakehouse", *args], capture_output=True, text=True, check=False,
                          env={**base, **(env or {})}, cwd=cwd, timeout=600)
