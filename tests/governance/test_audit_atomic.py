"""A submit or decision and its audit event are one step: the governance row takes effect only
once the audit event naming it exists. Rows left without one (a process killed between the two
commits, reproduced here by writing the row as that process would have) are void, hold their
seq, and the command can be run again; a decider waits briefly for a row still being recorded."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, Lake, standard_catalog, write_catalog

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.errors import Refused
from lakehouse.governance.audit import append_audit, current_head
from lakehouse.governance.requests import IN_FLIGHT_SECONDS
from lakehouse.lake import table as lake_table

EXPIRES = date(2025, 5, 1)


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    root = tmp_path / "lh"
    for zone in ("archive", "restricted", "research", "datasets"):
        (root / zone).mkdir(parents=True)
    lake = Lake(root, "".join(f'[{z}]\nuri = "{z}"\n' for z in ("archive", "restricted", "research", "datasets")))
    settings = lake.settings(approvals=2)
    write_catalog(settings, standard_catalog())
    return settings


def submit(settings: Settings) -> str:
    return governance.submit_request(
        settings, user="alice", project="p", title="t", purpose="p", protocol="IRB-1",
        cohort={"modalities": ["CT"]}, options=[], now=NOW,
    ).id


def left_by_a_kill(settings: Settings, request_id: str, seq: int, user: str, at: datetime, **values: Any) -> str:
    """The row an approve writes before its audit event, as a process killed right after leaves it."""
    events = lake_table(settings, "governance_events")
    head = current_head(settings)
    row = {
        "event_id": f"killed{seq}{user}", "request_id": request_id, "seq": seq, "action": "approve",
        "user": user, "at": at, "expires": EXPIRES, "approvals_required": 2,
        "audit_head": head.hash if head else None, **values,
    }
    events.append_serialized(f"request:{request_id}", lambda _s: (events.spec.to_arrow([row]), seq, None))
    return str(row["event_id"])


def audit_of(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    return [e.to_dict() for e in governance.list_audit(settings, request_id=request_id)]


def test_a_decision_without_its_audit_event_is_void_and_the_command_runs_again(local: Settings) -> None:
    request_id = submit(local)
    left_by_a_kill(local, request_id, 2, "bob", NOW)
    voided = governance.get_request(local, request_id, now=NOW)
    assert voided.status == "pending" and voided.approvers == [] and voided.last_seq == 2
    assert [d.seq for d in voided.decisions] == [1]
    again = governance.approve(local, request_id, user="bob", expires=EXPIRES, now=NOW)
    assert again.approvers == ["bob"] and [d.seq for d in again.decisions] == [1, 3]
    done = governance.approve(local, request_id, user="carol", expires=EXPIRES, now=NOW)
    assert done.status == "approved" and [d.seq for d in done.decisions] == [1, 3, 4]
    named = [e["subject_event_id"] for e in audit_of(local, request_id) if e["subject_event_id"]]
    assert named == [d.event_id for d in done.decisions]  # each effective event once, in order
    assert governance.verify_audit(local).ok


def test_a_submit_without_its_audit_event_never_existed(local: Settings) -> None:
    events = lake_table(local, "governance_events")
    row = {
        "event_id": "killedsubmit", "request_id": "req-0000000000aa", "seq": 1, "action": "submit",
        "user": "alice", "at": NOW, "project": "p", "title": "t", "purpose": "p", "protocol": "IRB-1",
        "cohort_json": "{}", "options": [],
    }
    events.append_serialized("request:req-0000000000aa", lambda _s: (events.spec.to_arrow([row]), 1, None))
    with pytest.raises(Refused, match="no request req-0000000000aa"):
        governance.get_request(local, "req-0000000000aa")
    assert governance.list_requests(local) == []
    with pytest.raises(Refused, match="no request req-0000000000aa"):
        governance.approve(local, "req-0000000000aa", user="bob", expires=EXPIRES, now=NOW)


def test_a_decider_waits_for_a_row_still_being_recorded(local: Settings) -> None:
    request_id = submit(local)
    recorded_at = datetime.now(UTC)
    event_id = left_by_a_kill(local, request_id, 2, "bob", recorded_at)

    def audit_it_late() -> None:  # bob's process, slow between its two commits
        time.sleep(1.5)
        append_audit(local, user="bob", action="request.approve", request_id=request_id, subject_event_id=event_id)

    late = threading.Thread(target=audit_it_late)
    started = time.monotonic()
    late.start()
    done = governance.approve(local, request_id, user="carol", expires=EXPIRES, now=NOW)
    late.join()
    assert 1.0 < time.monotonic() - started < IN_FLIGHT_SECONDS + 5
    assert done.status == "approved" and done.approvers == ["bob", "carol"]  # bob's approval counted


def test_an_audit_event_later_than_a_newer_decision_stays_void(local: Settings) -> None:
    request_id = submit(local)
    old = NOW - timedelta(seconds=IN_FLIGHT_SECONDS * 10)  # long dead: no one waits for it
    event_id = left_by_a_kill(local, request_id, 2, "bob", old)
    carol = governance.approve(local, request_id, user="carol", expires=EXPIRES, now=NOW)
    assert carol.approvers == ["carol"] and carol.status == "pending"
    # bob's process comes back and writes its audit event after carol decided without it
    append_audit(local, user="bob", action="request.approve", request_id=request_id, subject_event_id=event_id)
    after = governance.get_request(local, request_id, now=NOW)
    assert after.approvers == ["carol"] and after.status == "pending"  # what carol decided on holds
    dave = governance.approve(local, request_id, user="dave", expires=EXPIRES, now=NOW)
    assert dave.status == "approved" and dave.approvers == ["carol", "dave"]


def test_decisions_record_the_audit_head_they_were_made_against(local: Settings) -> None:
    request_id = submit(local)
    before = current_head(local)
    governance.approve(local, request_id, user="bob", expires=EXPIRES, now=NOW)
    rows = lake_table(local, "governance_events").read().sort_by("seq").to_pylist()
    assert before is not None and rows[1]["audit_head"] == before.hash
    approve_event = audit_of(local, request_id)[-1]
    assert approve_event["action"] == "request.approve" and approve_event["subject_event_id"] == rows[1]["event_id"]
    assert json.loads(json.dumps(approve_event, default=str))["details"]["approvals"] == 1


def test_an_event_the_commands_could_not_have_recorded_refuses_the_request(local: Settings) -> None:
    """A script with write access replays carol's signed-looking approval, and an audit event
    naming it, after the request was revoked: the request is refused as a whole, not re-approved."""
    request_id = submit(local)
    governance.approve(local, request_id, user="bob", expires=EXPIRES, now=NOW)
    governance.approve(local, request_id, user="carol", expires=EXPIRES, now=NOW)
    governance.revoke(local, request_id, user="root", reason="withdrawn", now=NOW)
    events = lake_table(local, "governance_events")
    carol = next(r for r in events.read().to_pylist() if r["seq"] == 3)
    replay = {**carol, "seq": 5, "event_id": "replayed"}
    events.append_serialized(f"request:{request_id}", lambda _s: (events.spec.to_arrow([replay]), 5, None))
    append_audit(local, user="carol", action="request.approve", request_id=request_id, subject_event_id="replayed")
    with pytest.raises(Refused, match=f"request {request_id} are inconsistent: seq 5 records an audit head"):
        governance.get_request(local, request_id, now=NOW)  # its old head would void the revoke
    permission = governance.may_run(local, request_id, now=NOW)
    assert not permission.allowed and "inconsistent" in str(permission.reason)
    # with the newest head instead, the replay voids nothing and is no transition from revoked
    head = current_head(local)
    assert head is not None
    newer = {**replay, "seq": 6, "event_id": "replayed-again", "audit_head": head.hash}
    events.append_serialized(f"request:{request_id}", lambda _s: (events.spec.to_arrow([newer]), 6, None))
    append_audit(local, user="carol", action="request.approve", request_id=request_id, subject_event_id="replayed-again")
    with pytest.raises(Refused, match="inconsistent"):
        governance.get_request(local, request_id, now=NOW)


def test_a_decision_overtaken_while_recording_is_void_and_says_so(
    local: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's process stalls between its decision and its audit event for longer than carol waits:
    carol decides without it, and bob's late audit event is followed by a void event and a refusal."""
    from lakehouse.governance import requests

    request_id = submit(local)
    expires = datetime.now(UTC).date() + timedelta(days=30)
    monkeypatch.setattr(requests, "IN_FLIGHT_SECONDS", 0.5)
    carol_decided = threading.Event()
    audit = requests.append_audit

    def stalled(settings: Settings, **event: Any) -> Any:
        if event["user"] == "bob" and event.get("subject_event_id"):
            carol_decided.wait(120)
        return audit(settings, **event)

    monkeypatch.setattr(requests, "append_audit", stalled)
    outcome: list[str] = []

    def bob() -> None:
        try:
            governance.approve(local, request_id, user="bob", expires=expires)
            outcome.append("recorded")
        except Refused as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=bob)
    worker.start()
    while lake_table(local, "governance_events").read().num_rows < 2:
        time.sleep(0.05)
    carol = governance.approve(local, request_id, user="carol", expires=expires)
    carol_decided.set()
    worker.join()
    assert carol.approvers == ["carol"] and carol.status == "pending"
    assert outcome == [f"request {request_id} changed before this approve was recorded; run it again"]
    assert [e["action"] for e in audit_of(local, request_id)][-2:] == ["request.approve", "request.approve.void"]
    assert governance.get_request(local, request_id).approvers == ["carol"]
