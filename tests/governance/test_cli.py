"""The governance CLI end to end (CliRunner), and refusal exit codes through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Lake, standard_catalog, write_catalog
from lakehouse_testing import reason_lines
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.errors import AuditChainBroken

runner = CliRunner()
EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A local root (the S3 paths are covered by the function tests)."""
    base = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (base / zone).mkdir(parents=True)
    lake = Lake(
        base, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets"))
    )
    write_catalog(lake.settings(), standard_catalog())
    (lake.root / "cohort.yaml").write_text("modalities: [CT]\nstudy_date_from: 2024-01-01\n")
    return lake.root


def cli(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--config", str(root / "lakehouse.toml"), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def lakehouse(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    entry = Path(sys.executable).with_name("lakehouse")
    return subprocess.run(
        [str(entry), *args, "--config", str(root / "lakehouse.toml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_walkthrough(root: Path) -> None:
    submitted = cli(
        root,
        "request",
        "submit",
        "--project",
        "lungs",
        "--title",
        "CT chest",
        "--purpose",
        "nodules",
        "--protocol",
        "IRB-7",
        "--cohort",
        str(root / "cohort.yaml"),
        "--option",
        "retain-full-dates",
        "--user",
        "alice",
    )
    request_id = submitted["id"]
    risk = submitted["preview"].pop("risk")
    assert risk["floor_off"] and risk["before"]["patients"] == 2 and "study year" in risk["before"]["quasi_identifiers"]
    assert submitted["preview"] == {
        "patients": 2,
        "studies": 2,
        "series": 2,
        "instances": 3,
        "bytes": 3000,
        "modalities": {"CT": 3},
        "burned_in_risk": 0,
        "opted_out_excluded": 0,
        "read_with_warnings": {},
        "unexportable": 0,
    }
    listed = cli(root, "request", "list", "--status", "pending", "--user", "bob")
    assert [r["id"] for r in listed["requests"]] == [request_id]
    approved = cli(
        root, "request", "approve", request_id, "--expires", EXPIRES, "--note", "ok", "--user", "bob"
    )
    assert approved["status"] == "approved" and approved["manifest_entries"] == 3
    shown = cli(root, "request", "show", request_id, "--user", "olga")
    assert [d["action"] for d in shown["decisions"]] == ["submit", "approve"]
    assert shown["review"]["totals"]["instances"] == "<5" and shown["options"] == ["retain-full-dates"]
    assert cli(root, "optout", "add", "--patient-id", "PAT-9", "--reason", "letter", "--user", "root") == {
        "registered": True
    }
    assert [o["patient_id"] for o in cli(root, "optout", "list", "--user", "root")["optouts"]] == ["PAT-9"]
    assert (
        cli(root, "request", "revoke", request_id, "--reason", "ended", "--user", "root")["status"]
        == "revoked"
    )
    verified = cli(root, "audit", "verify")
    assert verified["ok"] and verified["events"] == 7

    text = runner.invoke(
        app, ["request", "show", request_id, "--user", "olga", "--config", str(root / "lakehouse.toml")]
    )
    assert text.exit_code == 0 and "revoke by root" in text.stdout and "PAT-" not in text.stdout


def test_show_hides_identifier_criteria(root: Path) -> None:
    (root / "ids.yaml").write_text("patient_ids: [PAT-1, PAT-2]\n")
    request_id = cli(
        root,
        "request",
        "submit",
        "--project",
        "p",
        "--title",
        "t",
        "--purpose",
        "x",
        "--protocol",
        "IRB",
        "--cohort",
        str(root / "ids.yaml"),
        "--user",
        "alice",
    )["id"]
    shown = cli(root, "request", "show", request_id, "--user", "bob")
    assert shown["cohort"] == {"patient_ids": "<2 values>"}


def test_refusals_exit_non_zero_with_one_line_reason(root: Path) -> None:
    (root / "bad.yaml").write_text("modality: CT\n")
    bad = lakehouse(
        root,
        "request",
        "submit",
        "--project",
        "p",
        "--title",
        "t",
        "--purpose",
        "x",
        "--protocol",
        "IRB",
        "--cohort",
        str(root / "bad.yaml"),
        "--user",
        "alice",
    )
    assert bad.returncode == 3 and bad.stdout == ""
    assert len(reason_lines(bad.stderr)) == 1
    assert "unknown criterion 'modality'" in bad.stderr

    ok = lakehouse(
        root,
        "request",
        "submit",
        "--project",
        "p",
        "--title",
        "t",
        "--purpose",
        "x",
        "--protocol",
        "IRB",
        "--cohort",
        str(root / "cohort.yaml"),
        "--user",
        "alice",
        "--json",
    )
    request_id = json.loads(ok.stdout)["id"]
    own = lakehouse(root, "request", "approve", request_id, "--expires", EXPIRES, "--user", "alice")
    assert own.returncode == 3 and "not in [roles] approvers" in own.stderr
    nobody = lakehouse(root, "optout", "list", "--user", "mallory")
    assert nobody.returncode == 3 and "unknown user 'mallory'" in nobody.stderr
    no_user = lakehouse(root, "request", "list")
    assert no_user.returncode == 2 and "no user given" in no_user.stderr


def test_audit_verify_exits_non_zero_when_broken(root: Path) -> None:
    from deltalake import write_deltalake

    from lakehouse.config import load_settings
    from lakehouse.lake import table as lake_table

    cli(root, "optout", "add", "--patient-id", "PAT-1", "--reason", "letter", "--user", "root")
    cli(root, "optout", "list", "--user", "root")
    loc = lake_table(load_settings(root / "lakehouse.toml"), "audit")
    rows = loc.read().sort_by("seq").to_pylist()
    rows[1]["details_json"] = '{"count":0}'
    write_deltalake(loc.uri, loc.spec.to_arrow(rows), mode="overwrite")
    broken = lakehouse(root, "audit", "verify")
    assert broken.returncode == 4
    assert f"broken at event 1 ({rows[1]['event_id']}): hash does not match" in broken.stderr
    as_json = lakehouse(root, "audit", "verify", "--json")
    assert as_json.returncode == 4
    error = json.loads(as_json.stdout)  # one object: the error, carrying the verification
    assert error["code"] == "audit_chain_broken" and error["error"] in as_json.stderr
    assert error["details"]["first_broken"]["index"] == 1
    in_process = runner.invoke(app, ["audit", "verify", "--json", "--config", str(root / "lakehouse.toml")])
    assert isinstance(in_process.exception, AuditChainBroken)
