"""Fixtures for the dataset tests: a project exported from a synthetic archive (8 patients,
CT series of 8 slices with real geometry, MR, US and others), copied per test."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakehouse.config import Settings, init_root, load_settings, render_config

PROJECT = "lung-ai"
ROLES = {
    "requesters": ["alice"], "approvers": ["bob"], "operators": ["olga"], "admins": ["root"],
    "curators": ["cora"], "labelers": ["leo"],
}


@dataclass
class Lake:
    root: Path
    config: Path
    request_id: str

    @property
    def settings(self) -> Settings:
        return load_settings(self.config, env={})

    def copy(self, dest: Path) -> Lake:
        shutil.copytree(self.root, dest, symlinks=True)
        return Lake(dest, dest / "lakehouse.toml", self.request_id)


def configure(config: Path, **sections: dict) -> None:
    data = tomllib.loads(config.read_text())
    data.setdefault("identity", {})["mode"] = "asserted"
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    config.write_text(render_config(data))


def export_request(settings: Settings, *, project: str = PROJECT, cohort: dict | None = None) -> str:
    """Catalog, submit as alice, approve as bob, export as olga; returns the request id."""
    from lakehouse import governance
    from lakehouse.catalog import sync_catalog
    from lakehouse.export import run_export

    sync_catalog(settings)
    request = governance.submit_request(
        settings, user="alice", project=project, title="Nodules", purpose="Label nodules",
        protocol="IRB-2026-042", cohort=cohort or {}, options=["retain-modified-dates", "clean-descriptors"],
    )
    governance.approve(settings, request.id, user="bob", expires=date.today() + timedelta(days=30))
    run_export(settings, request.id, user="olga")
    return request.id


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    from lakehouse.synth import synthesize_archive

    root = tmp_path_factory.mktemp("datasets") / "lh"
    config = init_root(root)
    configure(config, roles=ROLES, export={"batch_size": 64, "workers": 1})
    synthesize_archive(root / "archive", patients=8, seed=5, ct_size=32, ct_slices=8)
    request_id = export_request(load_settings(config, env={}))
    return Lake(root, config, request_id)


@pytest.fixture
def lh(lake_template: Lake, tmp_path: Path) -> Lake:
    return lake_template.copy(tmp_path / "lh")
