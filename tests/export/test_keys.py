"""Where a project's key comes from (``lakehouse.export.keys``): env var, then the restricted
zone's key file (local 0600, or a conditional create on S3); ``lakehouse deid``'s order."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from lakehouse_testing import S3Server, write_s3_config

from lakehouse.config import Settings, init_root, load_settings
from lakehouse.errors import ConfigError, DeidError, InvalidProjectName
from lakehouse.export.keys import COMMAND_KEY_ENV, command_key, load_project_key

KEY_HEX = "ab" * 32


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(init_root(tmp_path / "lh"), env={})


def test_the_env_var_named_by_settings_comes_first_and_no_file_is_made(settings: Settings, tmp_path: Path) -> None:
    key = load_project_key(settings, "lung-ai", environ={"LAKEHOUSE_DEID_KEY_LUNG_AI": KEY_HEX})
    assert key == bytes.fromhex(KEY_HEX)
    assert not (tmp_path / "lh" / "restricted" / "keys").exists()
    config = tmp_path / "lh" / "lakehouse.toml"
    config.write_text(config.read_text().replace("LAKEHOUSE_DEID_KEY_{project}", "SITE_{project}_SECRET"))
    custom = load_settings(config, env={})
    assert load_project_key(custom, "lung-ai", environ={"SITE_LUNG_AI_SECRET": "cd" * 32}) == bytes.fromhex("cd" * 32)
    with pytest.raises(DeidError, match="SITE_LUNG_AI_SECRET is not hex") as err:
        load_project_key(custom, "lung-ai", environ={"SITE_LUNG_AI_SECRET": "not-a-key"})
    assert "not-a-key" not in str(err.value)


def test_the_key_file_is_created_once_complete_and_private(settings: Settings, tmp_path: Path) -> None:
    first = load_project_key(settings, "p1", environ={})
    path = tmp_path / "lh" / "restricted" / "keys" / "p1.key"
    assert len(first) == 32 and bytes.fromhex(path.read_text()) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_project_key(settings, "p1", environ={}) == first
    assert load_project_key(settings, "p2", environ={}) != first, "projects never share a key"
    assert sorted(p.name for p in path.parent.iterdir()) == ["p1.key", "p2.key"], "no temporary files left"


def test_racing_first_users_all_get_the_winning_key(tmp_path: Path) -> None:
    config = init_root(tmp_path / "lh")
    script = (
        "import sys; from lakehouse.config import load_settings; from lakehouse.export.keys import load_project_key;"
        "print(load_project_key(load_settings(sys.argv[1], env={}), 'race', environ={}).hex())"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(config)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    keys = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert len(keys) == 1 and all(p.returncode == 0 for p in procs)
    assert (tmp_path / "lh" / "restricted" / "keys" / "race.key").read_text() == keys.pop()


@pytest.mark.s3
def test_on_s3_the_key_is_created_if_absent_in_the_restricted_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket("keys")
    settings = load_settings(write_s3_config(tmp_path / "lh", s3_server, {"restricted": bucket}), env={})
    first = load_project_key(settings, "lung-ai", environ={})
    assert load_project_key(settings, "lung-ai", environ={}) == first
    stored = s3_server.client().get_object(Bucket=bucket, Key="restricted/keys/lung-ai.key")["Body"].read()
    assert bytes.fromhex(stored.decode()) == first


def test_the_restricted_zone_must_not_be_a_research_or_datasets_zone(tmp_path: Path) -> None:
    config = init_root(tmp_path / "lh")
    config.write_text(config.read_text().replace('[research]\nuri = "research"', '[research]\nuri = "restricted"'))
    settings = load_settings(config, env={})
    assert settings.research.uri == settings.restricted.uri
    with pytest.raises(ConfigError, match="must not be the research zone"):
        load_project_key(settings, "p", environ={})
    assert not (tmp_path / "lh" / "restricted" / "keys").exists()


def test_names_outside_the_rule_never_reach_storage(settings: Settings, tmp_path: Path) -> None:
    for name in ("../p", "a.b", ""):
        with pytest.raises(InvalidProjectName):
            load_project_key(settings, name, environ={})
    assert not (tmp_path / "lh" / "restricted" / "keys").exists()


def test_command_key_order(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "k.hex"
    key_file.write_text(KEY_HEX)
    env = {COMMAND_KEY_ENV: "cd" * 32, "LAKEHOUSE_DEID_KEY_P": "ef" * 32}
    assert command_key(settings, "p", key_file, env) == bytes.fromhex("ef" * 32), "a config: the project's key"
    assert command_key(None, "p", key_file, env) == bytes.fromhex(KEY_HEX), "else --key-file"
    assert command_key(None, "p", None, env) == bytes.fromhex("cd" * 32), f"else {COMMAND_KEY_ENV}"
    with pytest.raises(ConfigError, match="--config .* --key-file, or set LAKEHOUSE_DEID_KEY"):
        command_key(None, "p", None, {})
    with pytest.raises(InvalidProjectName):
        command_key(None, "p.q", key_file, env)
