from pathlib import Path

import pytest

from lakehouse.config import init_root, load_settings
from lakehouse.errors import ConfigError


def test_init_writes_defaults_and_folders(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root")
    assert path.name == "lakehouse.toml"
    for zone in ("archive", "restricted", "research", "datasets"):
        assert (tmp_path / "root" / zone).is_dir()
    settings = load_settings(path, env={})
    assert settings.archive.local_path == (tmp_path / "root" / "archive").resolve()
    assert settings.section("catalog")["header_bytes"] == 65536


def test_init_with_s3_archive(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root", "s3://pacs-archive/store")
    assert not (tmp_path / "root" / "archive").exists()
    settings = load_settings(path, env={})
    assert settings.archive.is_s3 and settings.archive.uri == "s3://pacs-archive/store"


def test_env_overrides_every_setting(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root")
    env = {
        "LAKEHOUSE_ARCHIVE_URI": "s3://other/prefix",
        "LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "12.5",
        "LAKEHOUSE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "LAKEHOUSE_ROLES_APPROVERS": '["bob", "carol"]',
        "LAKEHOUSE_POLICY_APPROVALS_REQUIRED": "2",
    }
    settings = load_settings(path, env=env)
    assert settings.archive.uri == "s3://other/prefix"
    assert settings.archive.endpoint_url == "http://127.0.0.1:9"
    assert settings.archive.storage_options()["AWS_ALLOW_HTTP"] == "true"
    assert settings.section("throttle")["requests_per_second"] == 12.5
    assert settings.section("roles")["approvers"] == ["bob", "carol"]
    assert settings.section("policy")["approvals_required"] == 2


def test_config_found_via_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = init_root(tmp_path / "root")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    assert load_settings().config_path == path
    monkeypatch.delenv("LAKEHOUSE_CONFIG")
    monkeypatch.chdir(tmp_path / "root")
    assert load_settings().config_path == path


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "lakehouse.toml"
    bad.write_text("[archive\nuri=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad.write_text('[archive]\nuri = "ftp://x"\n')
    with pytest.raises(ConfigError, match="uri must be"):
        load_settings(bad, env={})
