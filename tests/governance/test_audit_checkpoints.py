"""Checkpoints and `audit list`: the audit head recorded by every decision is cross-checked by
`audit verify`, so newest audit commits deleted from the Delta log are found; audit events name
the decisions they make effective, so removed decisions are found too; audit events are signed
when the actor's key is configured; `audit list` shows events with counts and hashes, never PHI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, date
from pathlib import Path

import pytest
from conftest import NOW, Lake, standard_catalog, write_catalog
from deltalake import write_deltalake
from signers import make_signer

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.governance.audit import canonical
from lakehouse.governance.signing import DOMAIN, load_signing_key
from lakehouse.lake import table as lake_table

ENTRY = Path(sys.executable).with_name("lakehouse")
EXPIRES = date(2025, 5, 1)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    root = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (root / zone).mkdir(parents=True)
    return Lake(root, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets")))


@pytest.fixture
def local(lake: Lake) -> Settings:
    settings = lake.settings(approvals=2)
    write_catalog(settings, standard_catalog())
    return settings


def approved(settings: Settings) -> str:
    request_id = governance.submit_request(
        settings, user="alice", project="lungs", title="t", purpose="p", protocol="IRB-1",
        cohort={"patient_ids": ["PAT-2"]}, options=[], now=NOW,
    ).id
    governance.approve(settings, request_id, user="bob", expires=EXPIRES, now=NOW)
    assert governance.approve(settings, request_id, user="carol", expires=EXPIRES, now=NOW).status == "approved"
    return request_id


def cut_newest_commits(settings: Settings, table: str, count: int) -> None:
    """What an insider with write access does to hide the newest events: delete the newest
    commits from the table's Delta log (the table then reads as of the version before)."""
    log = settings.restricted.local_path / table / "_delta_log"
    for commit in sorted(log.glob("*.json"))[-count:]:
        commit.unlink()


def test_cut_audit_tail_is_found_by_a_later_decisions_checkpoint(local: Settings) -> None:
    request_id = approved(local)  # submit, bob (head: submit's event), carol (head: bob's event)
    assert governance.verify_audit(local).ok
    cut_newest_commits(local, "governance/audit", 2)  # bob's and carol's audit events
    result = governance.verify_audit(local)
    assert not result.ok and result.first_broken is not None
    assert f"event 3 of request {request_id} recorded audit head" in result.first_broken.problem
    assert "events cut from the end" in result.first_broken.problem
    # and the decisions whose audit events went are void: nothing approved stands on a cut chain
    assert governance.get_request(local, request_id, now=NOW).status == "pending"
    assert not governance.may_run(local, request_id, now=NOW).allowed


def test_removed_decision_is_found_by_the_audit_event_naming_it(local: Settings) -> None:
    request_id = approved(local)
    events = lake_table(local, "governance_events")
    kept = [r for r in events.read().to_pylist() if r["seq"] != 3]  # carol's approval removed
    write_deltalake(events.uri, events.spec.to_arrow(kept), mode="overwrite")
    result = governance.verify_audit(local)
    assert not result.ok and result.first_broken is not None
    assert "which is not in governance_events (decisions removed)" in result.first_broken.problem
    assert governance.get_request(local, request_id, now=NOW).status == "pending"


def test_audit_events_are_signed_when_a_key_is_configured(lake: Lake, tmp_path: Path) -> None:
    bob = make_signer(tmp_path / "keys", "bob")
    settings = lake.settings(approvals=2, allowed_signers=[bob.line()])
    write_catalog(settings, standard_catalog())
    request_id = governance.submit_request(
        settings, user="alice", project="lungs", title="t", purpose="p", protocol="IRB-1",
        cohort={"patient_ids": ["PAT-2"]}, options=[], now=NOW,
    ).id
    governance.approve(bob.acting(settings), request_id, user="bob", expires=EXPIRES, now=NOW)
    listed = governance.list_audit(settings, request_id=request_id)
    assert [(e.action, e.signed) for e in listed] == [("request.submit", False), ("request.approve", True)]
    assert governance.verify_audit(settings).ok
    audit = lake_table(settings, "audit")
    rows = audit.read().sort_by("seq").to_pylist()
    # the same event signed with a key bob never registered, as a forger would
    forger = load_signing_key(make_signer(tmp_path / "other", "bob").acting(settings))
    assert forger is not None
    at = rows[-1]["at"].astimezone(UTC).isoformat(timespec="microseconds")
    payload = {"signer": "bob", "at": at, "audit_event": rows[-1]["hash"]}
    rows[-1]["signature"] = base64.b64encode(forger.sign(DOMAIN + canonical(payload).encode())).decode()
    write_deltalake(audit.uri, audit.spec.to_arrow(rows), mode="overwrite")
    result = governance.verify_audit(settings)
    assert not result.ok and result.first_broken is not None
    assert result.first_broken.problem == "its signature does not verify (event forged)"


def lakehouse(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRY), *args, "--config", str(config)], capture_output=True, text=True, check=False, timeout=120
    )


def test_audit_list_shows_counts_and_hashes_never_phi(lake: Lake, local: Settings) -> None:
    request_id = approved(local)
    governance.add_optout(local, user="root", patient_id="PAT-3", reason="letter from PAT-3")
    listed = lakehouse(lake.config, "audit", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)["events"]
    assert [e["action"] for e in events] == ["request.submit", "request.approve", "request.approve", "optout.add"]
    assert [e["seq"] for e in events] == [0, 1, 2, 3] and all(len(e["hash"]) == 64 for e in events)
    assert events[2]["details"]["manifest_entries"] == 2 and events[2]["subject_event_id"]
    of_request = json.loads(lakehouse(lake.config, "audit", "list", "--request", request_id, "--json").stdout)
    assert len(of_request["events"]) == 3
    assert json.loads(lakehouse(lake.config, "audit", "list", "--since", "2999-01-01", "--json").stdout) == {
        "events": []
    }
    text = lakehouse(lake.config, "audit", "list")
    assert text.returncode == 0 and len(text.stdout.strip().splitlines()) == 4
    assert "request.approve" in text.stdout and events[0]["hash"][:16] in text.stdout
    for phi in ("PAT-", "Name^", "ACC", "2.25.", "1.2.3.10", "letter"):
        assert phi not in listed.stdout + text.stdout


def test_audit_verify_names_the_cut_in_one_line(lake: Lake, local: Settings) -> None:
    approved(local)
    ok = lakehouse(lake.config, "audit", "verify")
    assert ok.returncode == 0 and "2 checkpoints hold" in ok.stdout
    cut_newest_commits(local, "governance/audit", 2)
    broken = lakehouse(lake.config, "audit", "verify")
    assert broken.returncode == 4
    assert [line for line in broken.stderr.splitlines() if "warning" not in line][-1].endswith(
        "which is not in the chain (events cut from the end, or the chain rewritten)"
    )
