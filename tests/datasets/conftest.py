"""Fixtures for the dataset tests: a project exported from a synthetic archive (8 patients,
CT series of 8 slices with real geometry, MR, US and others), copied per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets_testing import ROLES, export_request
from lakehouse_testing import Prepared, set_sections

from lakehouse.config import init_root, load_settings


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from lakehouse.synth import synthesize_archive

    root = tmp_path_factory.mktemp("datasets") / "lh"
    config = init_root(root)
    set_sections(config, roles=ROLES, export={"batch_size": 64, "workers": 1})
    synthesize_archive(root / "archive", patients=8, seed=5, ct_size=32, ct_slices=8)
    request_id = export_request(load_settings(config, env={}))
    return Prepared(root, config, request_id)


@pytest.fixture
def lh(lake_template: Prepared, tmp_path: Path) -> Prepared:
    return lake_template.copy(tmp_path / "lh")
