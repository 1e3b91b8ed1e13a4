import os
import subprocess
import sys
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from lakehouse.config import (
    ZONES,
    ExportSettings,
    RolesSettings,
    default_values,
    init_root,
    load_settings,
    render_config,
)
from lakehouse.config.settings import section_classes
from lakehouse.errors import ConfigError
from lakehouse.lake import delta_storage_options

LAKEHOUSE = Path(sys.executable).with_name("lakehouse")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakehouse.toml"
    path.write_text(text)
    return path


def test_init_writes_defaults_and_folders(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root")
    assert path.name == "lakehouse.toml"
    for zone in ("archive", "restricted", "research", "datasets"):
        assert (tmp_path / "root" / zone).is_dir()
    settings = load_settings(path, env={})
    assert settings.archive.local_path == (tmp_path / "root" / "archive").resolve()
    assert settings.catalog.header_bytes == 65536
    assert settings.export.batch_size == 500


def test_generated_config_round_trips_to_the_section_defaults(tmp_path: Path) -> None:
    """The defaults live in the section dataclasses only: the file init writes holds every key
    of each section it writes, and reads back as exactly those defaults."""
    settings = load_settings(init_root(tmp_path / "root"), env={})
    written = tomllib.loads((tmp_path / "root" / "lakehouse.toml").read_text())
    for name, cls in section_classes().items():
        if name in ZONES:
            assert written[name] == {"uri": name}
            continue
        assert getattr(settings, name) == cls(), name
        if name in written:
            assert set(written[name]) == {f.name for f in fields(cls)}
    assert set(written) == set(default_values())
    assert tomllib.loads(render_config(default_values())) == {
        name: {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}
        for name, values in default_values().items()
    }


def test_init_with_s3_archive_and_roles(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root", "s3://pacs-archive/store", roles={"approvers": ["bob"]})
    assert not (tmp_path / "root" / "archive").exists()
    settings = load_settings(path, env={})
    assert settings.archive.is_s3 and settings.archive.uri == "s3://pacs-archive/store"
    assert settings.roles == RolesSettings(approvers=("bob",))


def test_env_overrides_every_setting(tmp_path: Path) -> None:
    path = init_root(tmp_path / "root")
    env = {
        "LAKEHOUSE_ARCHIVE_URI": "s3://other/prefix",
        "LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "12.5",
        "LAKEHOUSE_THROTTLE_ADAPTIVE": "false",
        "LAKEHOUSE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "LAKEHOUSE_IDENTITY_SIGNING_KEY": "/home/bob/.ssh/id_ed25519",
        "LAKEHOUSE_EXPORT_ENGINE": "spark",
        # Not settings: other LAKEHOUSE_* variables are left alone.
        "LAKEHOUSE_USER": "alice",
        "LAKEHOUSE_DEID_KEY_LUNG_AI": "00" * 32,
    }
    settings = load_settings(path, env=env)
    assert settings.archive.uri == "s3://other/prefix"
    assert settings.archive.endpoint_url == "http://127.0.0.1:9"
    assert delta_storage_options(settings.archive)["AWS_ALLOW_HTTP"] == "true"
    assert settings.throttle.requests_per_second == 12.5
    assert settings.throttle.adaptive is False
    assert settings.identity.signing_key == "/home/bob/.ssh/id_ed25519"
    assert settings.export == ExportSettings(engine="spark")


def test_zones_share_s3_settings_with_their_own_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[archive]\nuri = "s3://pacs/a"\nendpoint_url = "https://archive.example"\nallow_http = true\n'
        '[research]\nuri = "s3://lake/r"\nregion = ""\n'
        '[restricted]\nuri = "file:///srv/restricted"\n'
        '[datasets]\nuri = "sets"\n'
        '[s3]\nendpoint_url = "https://lake.example"\nregion = "eu-west-1"\n',
    )
    settings = load_settings(path, env={"LAKEHOUSE_RESEARCH_PROFILE": "research-writer"})
    assert (settings.archive.endpoint_url, settings.archive.allow_http) == ("https://archive.example", True)
    assert settings.archive.region == "eu-west-1"
    # An empty zone value means "the shared one".
    assert (settings.research.endpoint_url, settings.research.region) == ("https://lake.example", "eu-west-1")
    assert settings.research.profile == "research-writer"
    assert settings.restricted.uri == "/srv/restricted"
    assert settings.datasets.local_path == tmp_path / "sets"
    assert "secret" not in repr(settings)


def test_config_found_via_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = init_root(tmp_path / "root")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    assert load_settings().config_path == path
    monkeypatch.delenv("LAKEHOUSE_CONFIG")
    monkeypatch.chdir(tmp_path / "root")
    assert load_settings().config_path == path


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "[archive\nuri=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad.write_text('[archive]\nuri = "ftp://x"\n')
    with pytest.raises(ConfigError, match="uri must be"):
        load_settings(bad, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[roles]\napprover = ["bob"]\n', r"unknown key 'approver' in \[roles\]; did you mean 'approvers'\?"),
        ("[export]\nbatchsize = 10\n", r"unknown key 'batchsize' in \[export\]; did you mean 'batch_size'\?"),
        ("[archive]\nname = 'x'\n", r"unknown key 'name' in \[archive\]; valid: 'endpoint_url', .*'uri'"),
        ("[expor]\nworkers = 2\n", r"unknown section \[expor\]; did you mean \[export\]\?"),
        ("[identitty]\nmode = 'os'\n", r"unknown section \[identitty\]; did you mean \[identity\]\?"),
        ("[signers]\nkeys = []\n", r"unknown section \[signers\]; valid: \[archive\], .*\[export\]"),
        ('approvers = ["bob"]\n', r"key 'approvers' must sit in a \[section\]; did you mean \[roles\] approvers\?"),
    ],
)
def test_unknown_names_are_refused_with_the_nearest_valid_one(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[export]\nworkers = "eight"\n', r"\[export\] workers must be a whole number, not text"),
        ("[export]\nbatch_size = 2.5\n", r"\[export\] batch_size must be a whole number, not a number"),
        ('[roles]\napprovers = "bob"\n', r"\[roles\] approvers must be a list of names, .*not text"),
        ('[roles]\napprovers = ["bob", 7]\n', r"\[roles\] approvers must be .*not a list holding a whole number"),
        ('[throttle]\nadaptive = "false"\n', r"\[throttle\] adaptive must be true or false, not text"),
        ("[throttle]\nrequests_per_second = true\n", r"\[throttle\] requests_per_second must be a number"),
        ("[throttle]\nmin_fraction = 2\n", r"\[throttle\] min_fraction must be at most 1"),
        ("[policy]\napprovals_required = 0\n", r"\[policy\] approvals_required must be at least 1"),
        ('[export]\nengine = "dask"\n', r"\[export\] engine must be one of local, spark"),
        ("[export]\nworkers = [1]\n", r"\[export\] workers must be a whole number, not a list"),
        ("[catalog]\nworkers = {n = 1}\n", r"\[catalog\] workers must be a whole number, not a table"),
        ('[deid]\nkey_env = "ONE_KEY_FOR_ALL"\n', r"\[deid\] key_env must contain \{project\}"),
        ('[deid]\nkey_env = "KEY_{project"\n', r"\[deid\] key_env must contain \{project\}"),
        ('[archive]\nuri = 7\n', r"\[archive\] uri must be text, not a whole number"),
    ],
)
def test_wrong_types_in_the_file_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LAKEHOUSE_EXPORT_WORKERS", "eight", "LAKEHOUSE_EXPORT_WORKERS must be a whole number, not text"),
        ("LAKEHOUSE_THROTTLE_ADAPTIVE", "yes", "LAKEHOUSE_THROTTLE_ADAPTIVE must be true or false, not text"),
        ("LAKEHOUSE_THROTTLE_ADAPTIVE", "1", "LAKEHOUSE_THROTTLE_ADAPTIVE must be true or false, not a whole"),
        ("LAKEHOUSE_S3_ALLOW_HTTP", "hunter2-secret", "LAKEHOUSE_S3_ALLOW_HTTP must be true or false"),
    ],
)
def test_wrong_types_in_env_name_the_variable(tmp_path: Path, name: str, value: str, message: str) -> None:
    path = init_root(tmp_path / "root")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={name: value})
    assert value not in str(caught.value)  # a mistyped value may be a secret


def test_a_role_never_matches_part_of_a_name(tmp_path: Path) -> None:
    from lakehouse.governance.roles import roles_of

    path = write(tmp_path, '[roles]\napprovers = ["bob"]\noperators = ["olga"]\n')
    settings = load_settings(path, env={})
    assert roles_of(settings, "bob") == {"approvers"}
    assert roles_of(settings, "bo") == roles_of(settings, "o") == set()




def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAKEHOUSE_CONFIG", raising=False)
    settings = load_settings(env={})
    assert settings.config_path is None
    assert settings.research.local_path == tmp_path / "research"
    assert asdict(settings.export) == asdict(ExportSettings())
    with pytest.raises(ConfigError, match="no lakehouse.toml here"):
        load_settings(env={}, require_file=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[roles]\napprover = ["bob"]\n', "unknown key 'approver' in [roles]; did you mean 'approvers'?"),
        ('[export]\nworkers = "eight"\n', "[export] workers must be a whole number, not text"),
    ],
)
def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    done = subprocess.run(
        [str(LAKEHOUSE), "catalog", "stats", "--config", str(bad)],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(bad) in lines[0]
