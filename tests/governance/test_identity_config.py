"""Roles and policy come only from the governed config file: the insider attacks of issue 11
(environment overrides in the requester's own shell, a role written as text, a cohort number
beyond int64) are refused with a one-line reason, through real `lakehouse` processes; and
approve asks for confirmation on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Lake, standard_catalog, write_catalog
from lakehouse_testing import lakehouse_cli

from lakehouse import governance
from lakehouse import lake as lake_layer
from lakehouse.config import load_settings
from lakehouse.errors import ConfigError
from lakehouse.governance.roles import roles_of

ENTRY = Path(sys.executable).with_name("lakehouse")
EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()

pytestmark = pytest.mark.parametrize("lake", ["local"], indirect=True)


def submitted(lake: Lake, **cohort: object) -> str:
    settings = lake.settings(approvals=2)
    write_catalog(settings, standard_catalog())
    request = governance.submit_request(
        settings, user="alice", project="lungs", title="t", purpose="p", protocol="IRB-1",
        cohort=cohort or {"modalities": ["CT"]}, options=[],
    )
    return request.id


def _read(lake_: Lake, name: str) -> list[dict]:  # type: ignore[type-arg]
    return lake_layer.table(load_settings(lake_.config, env={}), name).read().to_pylist()


def test_the_requester_cannot_grant_herself_a_second_name_from_her_shell(lake: Lake) -> None:
    """Issue 11: `LAKEHOUSE_ROLES_APPROVERS='["alice2"]' LAKEHOUSE_POLICY_APPROVALS_REQUIRED=1`
    let the requester approve her own request under a second name, with the file's quorum 2."""
    request_id = submitted(lake)
    before = len(_read(lake, "audit"))
    attack = {"LAKEHOUSE_ROLES_APPROVERS": '["alice2"]', "LAKEHOUSE_POLICY_APPROVALS_REQUIRED": "1"}
    done = lakehouse_cli(lake.config, "request", "approve", request_id, "--expires", EXPIRES, "--user", "alice2", env=attack)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "lakehouse: LAKEHOUSE_ROLES_APPROVERS is set, but [roles] approvers is governed and comes only "
        "from the config file; unset it\n"
    )
    quorum_only = lakehouse_cli(
        lake.config, "request", "approve", request_id, "--expires", EXPIRES, "--user", "bob",
        env={"LAKEHOUSE_POLICY_APPROVALS_REQUIRED": "1"},
    )
    assert quorum_only.returncode == 2 and "LAKEHOUSE_POLICY_APPROVALS_REQUIRED is set" in quorum_only.stderr
    assert len(_read(lake, "audit")) == before  # refused before anything is read or written
    assert governance.get_request(load_settings(lake.config, env={}), request_id).status == "pending"


@pytest.mark.parametrize(
    ("variable", "value", "args"),
    [
        ("LAKEHOUSE_ROLES_OPERATORS", '["alice"]', ["export", "run", "req-000000000000", "--user", "alice"]),
        ("LAKEHOUSE_ROLES_ADMINS", "alice", ["optout", "list", "--user", "alice"]),
        ("LAKEHOUSE_POLICY_MAX_VALIDITY_DAYS", "100000", ["request", "list", "--user", "alice"]),
        ("LAKEHOUSE_POLICY_ALLOWED_SIGNERS", '["alice ssh-ed25519 AAAA"]', ["request", "list", "--user", "alice"]),
        ("LAKEHOUSE_IDENTITY_MODE", "asserted", ["request", "list", "--user", "bob"]),
    ],
)
def test_governed_settings_from_the_environment_are_refused(
    lake: Lake, variable: str, value: str, args: list[str]
) -> None:
    lake.settings(mode="os")
    done = lakehouse_cli(lake.config, *args, env={variable: value})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"lakehouse: {variable} is set, but [") and done.stderr.count("\n") == 1
    assert value not in done.stderr


def test_operating_settings_still_come_from_the_environment(lake: Lake) -> None:
    lake.settings()
    env = {"LAKEHOUSE_IDENTITY_SIGNING_KEY": "/keys/bob", "LAKEHOUSE_THROTTLE_MAX_RETRIES": "1"}
    settings = load_settings(lake.config, env=env)
    assert settings.identity.signing_key == "/keys/bob" and settings.throttle.max_retries == 1
    assert settings.identity.mode == "asserted"  # from the file


def test_a_role_written_as_text_is_refused_at_load(lake: Lake) -> None:
    """Issue 11: `approvers = "bob"` matched substrings, so user `b` approved."""
    lake.config.write_text(lake.zones_toml + '\n[roles]\nrequesters = ["alice"]\napprovers = "bob"\n')
    with pytest.raises(ConfigError, match=r"\[roles\] approvers must be a list of names, .*not text"):
        load_settings(lake.config, env={})
    done = lakehouse_cli(lake.config, "request", "list", "--user", "b")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "[roles] approvers must be a list of names" in done.stderr
    lake.settings(roles='\n[roles]\napprovers = ["bob"]\n')
    assert roles_of(load_settings(lake.config, env={}), "b") == set()


@pytest.mark.parametrize("number", ["99999999999999999999999", str(2**63), "1000000001", "0"])
def test_a_cohort_number_beyond_bounds_is_refused_before_anything_is_recorded(lake: Lake, number: str) -> None:
    """Issue 11: `max_studies` beyond int64 recorded a request without an audit event."""
    lake.settings()
    cohort = lake.root / "cohort.yaml"
    cohort.write_text(f"modalities: [CT]\nmax_studies: {number}\n")
    done = lakehouse_cli(
        lake.config, "request", "submit", "--project", "lungs", "--title", "t", "--purpose", "p",
        "--protocol", "IRB-1", "--cohort", str(cohort), "--user", "alice",
    )
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == "lakehouse: cohort: max_studies must be a whole number from 1 to 1000000000"
    settings = load_settings(lake.config, env={})
    assert not lake_layer.table(settings, "governance_events").exists() or governance.list_requests(settings) == []


def _on_a_terminal(config: Path, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; answer the first question."""
    main, secondary = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    process = subprocess.Popen(
        [str(ENTRY), *args, "--config", str(config)],
        stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True,
        env={**clean, "LAKEHOUSE_NO_PROGRESS": "1", "COLUMNS": "200", "TERM": "dumb"},
    )
    os.close(secondary)
    seen, answered, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(main, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(main)
    return process.wait(timeout=60), seen.decode(errors="replace")


def test_approve_asks_for_confirmation_on_a_terminal(lake: Lake) -> None:
    request_id = submitted(lake)
    args = ["request", "approve", request_id, "--expires", EXPIRES, "--user", "bob"]
    code, shown = _on_a_terminal(lake.config, args, b"n\n")
    assert code != 0 and "modality is CT" in shown  # the review came first
    assert f"Approve {request_id} until {EXPIRES} as bob? [y/N]" in shown
    settings = load_settings(lake.config, env={})
    assert governance.get_request(settings, request_id).approvers == []
    code, shown = _on_a_terminal(lake.config, args, b"y\n")
    assert code == 0, shown
    assert governance.get_request(settings, request_id).approvers == ["bob"]
    # --yes skips the question on a terminal too.
    code, shown = _on_a_terminal(lake.config, [*args[:-1], "carol", "--yes", "--json"], b"n\n")
    assert code == 0 and "[y/N]" not in shown
    assert json.loads(shown[shown.index("{"):])["approvers"] == ["bob", "carol"]
