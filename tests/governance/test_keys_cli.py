"""`lakehouse keys` through the real entry point: the identity the tool sees, the signing key's
state, the allowed_signers line to add; then that line added, a decision signed by the CLI and
verified by the export gate (the setup a new approver goes through)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Lake, standard_catalog, write_catalog
from signers import make_signer

from lakehouse import governance
from lakehouse.config import Settings

EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """A local root (signing runs the same on S3: nothing here touches a zone but the catalog)."""
    base = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (base / zone).mkdir(parents=True)
    return Lake(
        base, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets"))
    )


def keys(lake: Lake, *args: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("LAKEHOUSE_USER", "LAKEHOUSE_IDENTITY_SIGNING_KEY")
    }
    if key is not None:
        env["LAKEHOUSE_IDENTITY_SIGNING_KEY"] = str(key)  # per user: the environment may set it
    entry = Path(sys.executable).with_name("lakehouse")
    return subprocess.run(
        [str(entry), *args, "--config", str(lake.config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_os_identity_without_a_key(lake: Lake) -> None:
    lake.settings(mode="os")
    done = keys(lake, "keys", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    login = pwd.getpwuid(os.geteuid()).pw_name
    assert status["identity"] == login and status["mode"] == "os" and status["signatures_required"]
    assert status["signing_key"] is None and status["allowed_signers_line"] is None and not status["listed"]
    text = keys(lake, "keys")
    assert "ssh-keygen -t ed25519" in text.stdout and f"identity: {login} (mode os)" in text.stdout
    refused = keys(lake, "keys", "--user", f"not-{login}")
    assert refused.returncode == 3 and "is not who is acting" in refused.stderr


def test_key_problems_are_reported_not_raised(lake: Lake, tmp_path: Path) -> None:
    bob = make_signer(tmp_path / "keys", "bob")
    lake.settings(mode="asserted")
    bob.key_path.chmod(0o644)
    done = keys(lake, "keys", "--user", "bob", "--json", key=bob.key_path)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["public_key"] is None and status["problems"] == [
        f"signing key {bob.key_path} is accessible by others; chmod 600 it"
    ]
    assert "identity mode is 'asserted'" in done.stderr  # the demo-mode warning


def test_line_added_then_the_cli_signs_and_the_export_verifies(lake: Lake, tmp_path: Path) -> None:
    """bob runs `keys`, an admin adds the printed line, bob approves with the CLI, the gate verifies."""
    bob = make_signer(tmp_path / "keys", "bob")
    settings = lake.settings(mode="asserted")
    write_catalog(settings, standard_catalog())
    status = json.loads(keys(lake, "keys", "--user", "bob", "--json", key=bob.key_path).stdout)
    line = status["allowed_signers_line"]
    assert line.startswith('bob valid-after="') and bob.public in line and not status["listed"]
    assert status["roles"] == ["approvers"]

    settings = lake.settings(mode="asserted", allowed_signers=[line])
    listed = json.loads(keys(lake, "keys", "--user", "bob", "--json", key=bob.key_path).stdout)
    assert listed["listed"] and listed["allowed_signers_line"] is None
    assert (
        "this key may sign your decisions now" in keys(lake, "keys", "--user", "bob", key=bob.key_path).stdout
    )

    req = submit(settings)
    unsigned = keys(lake, "request", "approve", req.id, "--user", "bob", "--expires", EXPIRES, "--yes")
    assert unsigned.returncode == 3 and "decisions must be signed" in unsigned.stderr
    approved = keys(
        lake, "request", "approve", req.id, "--user", "bob", "--expires", EXPIRES, "--yes", key=bob.key_path
    )
    assert approved.returncode == 0, approved.stderr
    assert governance.may_run(settings, req.id).allowed


def submit(settings: Settings) -> governance.Request:
    return governance.submit_request(
        settings,
        user="alice",
        project="lungs",
        title="CT",
        purpose="nodules",
        protocol="IRB-1",
        cohort={"modalities": ["CT"]},
        options=[],
    )
