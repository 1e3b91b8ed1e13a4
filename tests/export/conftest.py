"""Fixtures for the export tests: an approved request over a synthetic archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from export_testing import PROJECT, ROLES, prepare
from forked_cli import CliServer
from lake_check import LakeView, view
from lakehouse_testing import Prepared, set_sections


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


@pytest.fixture(scope="session")
def cli_server() -> Iterator[CliServer]:
    """Forks the lakehouse CLI into short-lived child processes (see ``forked_cli``)."""
    server = CliServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def small_template(prepared_template: Prepared, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The prepared root with two batches per run (one worker): quick runs for race and kill tests."""
    small = prepared_template.copy(tmp_path_factory.mktemp("small") / "lh")
    set_sections(small.config, export={"batch_size": 9, "workers": 1})
    return small


@pytest.fixture(scope="session")
def small_baseline(small_template: Prepared, tmp_path_factory: pytest.TempPathFactory) -> LakeView:
    """The project after one uninterrupted run of the small root's request."""
    from lakehouse.export import run_export

    done = small_template.copy(tmp_path_factory.mktemp("small-baseline") / "lh")
    assert run_export(done.settings, done.request_id, user="olga").state.batches == 2
    return view(done.root, PROJECT)


@pytest.fixture
def small(small_template: Prepared, tmp_path: Path) -> Prepared:
    return small_template.copy(tmp_path / "lh")
