"""How the real ``lakehouse`` command fails: usage errors print the usage and exit 2, every
failure with ``--json`` prints one JSON error object on stdout and one line on stderr, and
``--version`` names the installed version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import lakehouse

ENTRY = Path(sys.executable).with_name("lakehouse")


def lakehouse_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    return subprocess.run(
        [str(ENTRY), *args], capture_output=True, text=True, check=False, env=env, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["request", "submit", "--user", "alice"], "Missing option '--project'"),
        (["request", "approve", "req-000000000000", "--expires", "2027-13-45"], "Invalid value for '--expires'"),
        (["export", "status"], "Missing argument"),
        (["nosuch"], "No such command 'nosuch'"),
        (["request", "list", "--no-such-option"], "No such option: --no-such-option"),
        (["request"], "Usage: lakehouse request"),
        ([], "Usage: lakehouse"),
    ],
    ids=["missing-option", "bad-date", "missing-argument", "unknown-command", "unknown-option", "group", "root"],
)
def test_usage_errors_print_usage_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = lakehouse_cli(*args, cwd=tmp_path)
    shown = done.stdout + done.stderr  # a group without a command shows its help
    assert done.returncode == 2, shown
    assert message in shown and "Usage:" in shown
    assert "internal error" not in shown and "Traceback" not in shown


def test_json_usage_error_is_one_object(tmp_path: Path) -> None:
    done = lakehouse_cli("request", "submit", "--user", "alice", "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert json.loads(done.stdout) == {"error": "Missing option '--project'.", "code": "usage_error"}
    assert done.stderr == "lakehouse: Missing option '--project'.\n"
    misplaced = lakehouse_cli("request", "--json", "list", cwd=tmp_path)  # --json anywhere counts
    assert misplaced.returncode == 2
    assert json.loads(misplaced.stdout)["code"] == "usage_error"


def test_json_refusals_are_one_object(tmp_path: Path) -> None:
    missing = lakehouse_cli("catalog", "stats", "--json", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2
    error = json.loads(missing.stdout)
    assert error["code"] == "config_error" and "config file not found" in error["error"]
    assert missing.stderr == f"lakehouse: {error['error']}\n"

    assert lakehouse_cli("init", str(tmp_path / "lh")).returncode == 0
    config = str(tmp_path / "lh" / "lakehouse.toml")
    refused = lakehouse_cli("request", "list", "--user", "mallory", "--config", config, "--json")
    assert refused.returncode == 3
    error = json.loads(refused.stdout)
    # `init` writes identity mode os: a typed name other than the login is refused.
    assert error["code"] == "refused" and "--user 'mallory' is not who is acting" in error["error"]
    assert refused.stderr.count("\n") == 1

    plain = lakehouse_cli("request", "list", "--user", "mallory", "--config", config)
    assert plain.returncode == 3 and plain.stdout == "" and plain.stderr.startswith("lakehouse: ")


def test_version() -> None:
    done = lakehouse_cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"lakehouse {lakehouse.__version__}\n"
    assert lakehouse.__version__ == version("lakehouse")  # pyproject reads the version from the package
