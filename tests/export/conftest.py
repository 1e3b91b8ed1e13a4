"""Fixtures for the export tests: an approved request over a synthetic archive."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_testing import ROLES, Prepared, prepare, set_sections


@pytest.fixture(scope="session")
def prepared_template(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from lakehouse.config import init_root

    root = tmp_path_factory.mktemp("template") / "lh"
    config = init_root(root)
    set_sections(config, roles=ROLES, export={"batch_size": 4, "workers": 2})
    request_id = prepare(config, synth_into=root / "archive")
    return Prepared(root, config, request_id)


@pytest.fixture
def prepared(prepared_template: Prepared, tmp_path: Path) -> Prepared:
    return prepared_template.copy(tmp_path / "lh")
