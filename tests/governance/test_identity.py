"""Who is acting is proved, not typed: identity modes os, aws (STS on the moto server) and
asserted, through real `lakehouse` processes where the attack is a typed name or an env var."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from conftest import ROLES, Lake, standard_catalog, write_catalog
from lakehouse_testing import S3Server, lakehouse_cli, reason_lines, write_s3_config

from lakehouse import governance
from lakehouse import lake as lake_layer
from lakehouse.config import load_settings
from lakehouse.errors import ConfigError, Refused
from lakehouse.governance.identity import ASSERTED_WARNING, Identity, current_identity

LOGIN = pwd.getpwuid(os.geteuid()).pw_name
EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def os_roles(**extra: list[str]) -> str:
    """[roles] for mode os: the login of this process is an approver (and whatever else is given)."""
    roles = {"requesters": ["alice"], "approvers": [LOGIN], "operators": ["olga"], "admins": ["root-admin"]}
    for role, names in extra.items():
        roles[role] = roles[role] + names
    return "\n[roles]\n" + "".join(f"{role} = {json.dumps(names)}\n" for role, names in roles.items())


@pytest.fixture
def local_lake(tmp_path: Path) -> Lake:
    root = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (root / zone).mkdir(parents=True)
    return Lake(root, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets")))


# --- os ---------------------------------------------------------------------------------


def test_os_mode_is_the_login_of_the_process(local_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = local_lake.settings(mode="os", roles=os_roles())
    monkeypatch.setenv("USER", "bob")  # getpass would believe these; the uid does not change
    monkeypatch.setenv("LOGNAME", "bob")
    assert current_identity(settings, None) == Identity(LOGIN, "os")
    assert current_identity(settings, LOGIN) == Identity(LOGIN, "os")
    with pytest.raises(Refused, match=f"--user 'bob' is not who is acting: identity mode os sees '{LOGIN}'"):
        current_identity(settings, "bob")


def test_os_mode_refuses_a_typed_name_on_every_user_command(local_lake: Lake) -> None:
    settings = local_lake.settings(mode="os", roles=os_roles())
    write_catalog(settings, standard_catalog())
    config = local_lake.config
    for args in (
        ["request", "list"],
        ["request", "show", "req-000000000000"],
        ["request", "approve", "req-000000000000", "--expires", EXPIRES],
        ["request", "reject", "req-000000000000", "--reason", "no"],
        ["request", "revoke", "req-000000000000", "--reason", "no"],
        ["export", "run", "req-000000000000"],
        ["optout", "list"],
        ["catalog", "sync"],
    ):
        typed = lakehouse_cli(config, *args, "--user", "bob")
        assert typed.returncode == 3, (args, typed.stderr)
        assert typed.stderr == f"lakehouse: --user 'bob' is not who is acting: identity mode os sees '{LOGIN}'\n"
    from_env = lakehouse_cli(config, "request", "list", env={"LAKEHOUSE_USER": "bob", "USER": "bob", "LOGNAME": "bob"})
    assert from_env.returncode == 3 and "is not who is acting" in from_env.stderr
    # No name typed (or the login repeated): the login acts, and no warning is printed.
    listed = lakehouse_cli(config, "request", "list", "--json", env={"USER": "bob"})
    assert listed.returncode == 0 and listed.stderr == "" and json.loads(listed.stdout) == {"requests": []}
    assert lakehouse_cli(config, "request", "list", "--user", LOGIN).returncode == 0
    audit = lake_layer.table(load_settings(config), "audit").read().to_pylist()
    assert [(e["user"], e["action"]) for e in audit if e["action"] == "request.list"] == [(LOGIN, "request.list")] * 2


def test_os_mode_roles_map_logins(local_lake: Lake) -> None:
    """The requester cannot approve her own request under a name she types: under mode os the
    approval is by the login, whatever --user says."""
    settings = local_lake.settings(mode="os", roles=os_roles(requesters=[LOGIN]))
    write_catalog(settings, standard_catalog())
    cohort = local_lake.root / "cohort.yaml"
    cohort.write_text("modalities: [CT]\n")
    submitted = lakehouse_cli(
        local_lake.config, "request", "submit", "--project", "lungs", "--title", "t", "--purpose", "p",
        "--protocol", "IRB-1", "--cohort", str(cohort), "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    request_id = json.loads(submitted.stdout)["id"]
    as_other = lakehouse_cli(local_lake.config, "request", "approve", request_id, "--expires", EXPIRES, "--user", "bob", "--yes")
    assert as_other.returncode == 3 and "is not who is acting" in as_other.stderr
    own = lakehouse_cli(local_lake.config, "request", "approve", request_id, "--expires", EXPIRES, "--yes")
    assert own.returncode == 3
    assert reason_lines(own.stderr)[-1].endswith("the requester cannot approve their own request")


# --- asserted ---------------------------------------------------------------------------


def test_asserted_mode_takes_names_as_typed_and_warns_on_every_command(local_lake: Lake) -> None:
    settings = local_lake.settings(mode="asserted")
    write_catalog(settings, standard_catalog())
    assert current_identity(settings, "bob") == Identity("bob", "asserted")
    with pytest.raises(ConfigError, match="no user given"):
        current_identity(settings, None)
    for args in (["request", "list", "--user", "bob"], ["catalog", "stats"], ["export", "list"]):
        done = lakehouse_cli(local_lake.config, *args, "--json")
        assert done.returncode == 0, done.stderr
        assert done.stderr == f"lakehouse: {ASSERTED_WARNING}\n"
        json.loads(done.stdout)  # the warning never reaches stdout
    request = governance.submit_request(
        settings, user="alice", project="lungs", title="t", purpose="p", protocol="IRB-1",
        cohort={"modalities": ["CT"]}, options=[],
    )
    approved = lakehouse_cli(local_lake.config, "request", "approve", request.id, "--expires", EXPIRES, "--user", "bob")
    assert approved.returncode == 0, approved.stderr
    events = lake_layer.table(settings, "governance_events").read().to_pylist()
    assert [e["identity_mode"] for e in events if e["action"] == "approve"] == ["asserted"]  # decisions record it
    refused = lakehouse_cli(local_lake.config, "request", "list", "--user", "mallory")
    assert refused.stderr.splitlines() == [f"lakehouse: {ASSERTED_WARNING}", "lakehouse: unknown user 'mallory': not in any [roles] list"]


# --- aws (STS on the moto server) -------------------------------------------------------


def _iam_user(server: S3Server, name: str) -> tuple[str, str, str]:
    """An IAM user on the moto server: (ARN, access key id, secret)."""
    iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name="us-east-1")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.s3
def test_aws_mode_is_the_sts_caller_of_the_zone_credentials(s3_server: S3Server, tmp_path: Path) -> None:
    suffix = os.urandom(4).hex()
    bob_arn, bob_key, bob_secret = _iam_user(s3_server, f"bob-{suffix}")
    alice_arn, alice_key, alice_secret = _iam_user(s3_server, f"alice-{suffix}")
    roles = (
        f'\n[identity]\nmode = "aws"\n[roles]\nrequesters = [{json.dumps(alice_arn)}]\n'
        f"approvers = [{json.dumps(bob_arn)}]\n"
    )
    config = write_s3_config(tmp_path / "lh", s3_server, {"restricted": s3_server.new_bucket("gov")}, roles)
    as_bob = {"LAKEHOUSE_S3_ACCESS_KEY_ID": bob_key, "LAKEHOUSE_S3_SECRET_ACCESS_KEY": bob_secret}
    settings = load_settings(config, env=as_bob)
    assert current_identity(settings, None) == Identity(bob_arn, "aws")
    assert current_identity(settings, bob_arn) == Identity(bob_arn, "aws")
    with pytest.raises(Refused, match="is not who is acting: identity mode aws sees 'arn:aws:iam::"):
        current_identity(settings, alice_arn)

    listed = lakehouse_cli(config, "request", "list", "--json", env=as_bob)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    typed = lakehouse_cli(config, "request", "list", "--user", bob_arn.replace("bob", "alice"), env=as_bob)
    assert typed.returncode == 3 and "identity mode aws sees" in typed.stderr
    # Alice's own credentials prove Alice.
    as_alice = {"LAKEHOUSE_S3_ACCESS_KEY_ID": alice_key, "LAKEHOUSE_S3_SECRET_ACCESS_KEY": alice_secret}
    assert current_identity(load_settings(config, env=as_alice), None) == Identity(alice_arn, "aws")
    audit = lake_layer.table(settings, "audit").read().to_pylist()
    assert [e["user"] for e in audit if e["action"] == "request.list"] == [bob_arn]


def test_aws_mode_without_a_reachable_sts_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "lh"
    root.mkdir()
    config = root / "lakehouse.toml"
    config.write_text(
        '[restricted]\nuri = "s3://gov/restricted"\n'
        '[s3]\nendpoint_url = "http://127.0.0.1:9"\naccess_key_id = "x"\nsecret_access_key = "y"\n'
        '[identity]\nmode = "aws"\n' + ROLES
    )
    settings = load_settings(config, env={})
    with pytest.raises(Refused, match=r"^identity mode aws: STS GetCallerIdentity failed: \w+$"):
        current_identity(settings, None)


def test_the_spark_job_takes_the_operator_from_the_identity_mode(local_lake: Lake) -> None:
    """`spark-submit jobs/export_spark.py --user …` is refused before Spark starts when the name
    is not the login (mode os)."""
    local_lake.settings(mode="os", roles=os_roles())
    job = Path(__file__).resolve().parents[2] / "jobs" / "export_spark.py"
    done = subprocess.run(
        [sys.executable, str(job), "req-000000000000", "--config", str(local_lake.config), "--user", "olga"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 3
    assert done.stderr == f"lakehouse: --user 'olga' is not who is acting: identity mode os sees '{LOGIN}'\n"
