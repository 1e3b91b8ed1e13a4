"""Concurrent decisions: real processes started at the same moment, on local folders and S3.
Decisions on one request are serialized by the Delta log (app transaction per request);
the loser of a commit race re-reads, and is recorded once or refused with the reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import NOW, Lake, standard_catalog, write_catalog

from lakehouse import governance
from lakehouse.errors import Refused
from lakehouse.governance.requests import Request, _decide

EXPIRES = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def pending(lake: Lake, approvals: int) -> tuple[Any, Request]:
    settings = lake.settings(approvals=approvals)
    write_catalog(settings, standard_catalog())
    req = governance.submit_request(
        settings,
        user="alice",
        project="p",
        title="t",
        purpose="p",
        protocol="IRB-1",
        cohort={"modalities": ["CT"]},
        options=[],
    )
    return settings, req


def test_commit_race_loser_rereads_and_is_refused(lake: Lake) -> None:
    """Deterministic replay of a lost race: a reject commits after the approval read its snapshot."""
    settings, req = pending(lake, 1)
    seen: list[str] = []

    def decide(current: Request, _table: object) -> dict[str, Any]:
        seen.append(current.status)
        if len(seen) == 1:
            governance.reject(settings, req.id, user="carol", reason="first", now=NOW)
        if current.status != "pending":
            raise Refused(f"request {current.id} is {current.status}")
        return {"expires": date(2025, 5, 1), "approvals_required": 1}

    with pytest.raises(Refused, match=f"request {req.id} is rejected"):
        _decide(settings, req.id, "bob", "approve", NOW, decide)
    assert seen == ["pending", "rejected"]  # the stale decision was re-checked, not written
    final = governance.get_request(settings, req.id)
    assert [(d.seq, d.action) for d in final.decisions] == [(1, "submit"), (2, "reject")]


def test_two_approvers_at_once_both_recorded_once(lake: Lake, race) -> None:  # type: ignore[no-untyped-def]
    settings, req = pending(lake, 2)
    results = race(
        lake.config,
        [{"do": "approve", "request_id": req.id, "user": u, "expires": EXPIRES} for u in ("bob", "carol")],
    )
    final = governance.get_request(settings, req.id)
    assert final.status == "approved"
    assert sorted(final.approvers) == ["bob", "carol"]
    assert [d.seq for d in final.decisions] == [1, 2, 3]
    assert [d.manifest_sha256 is not None for d in final.decisions] == [False, False, True]
    assert sorted(r.get("status", "") for r in results) == ["approved", "pending"]
    assert len(governance.load_manifest(settings, req.id)) == 3
    assert governance.verify_audit(settings).ok


def test_approve_vs_reject_exactly_one_wins(lake: Lake, race) -> None:  # type: ignore[no-untyped-def]
    settings, req = pending(lake, 1)
    approve_result, reject_result = race(
        lake.config,
        [
            {"do": "approve", "request_id": req.id, "user": "bob", "expires": EXPIRES},
            {"do": "reject", "request_id": req.id, "user": "carol"},
        ],
    )
    final = governance.get_request(settings, req.id)
    assert len(final.decisions) == 2
    if final.status == "approved":
        assert approve_result == {"status": "approved"}
        assert reject_result == {"refused": f"request {req.id} is approved"}
    else:
        assert final.status == "rejected"
        assert reject_result == {"status": "rejected"}
        assert approve_result == {"refused": f"request {req.id} is rejected"}
        assert not governance.may_run(settings, req.id).allowed
    assert governance.verify_audit(settings).ok


def test_approve_vs_revoke_always_ends_revoked(lake: Lake, race) -> None:  # type: ignore[no-untyped-def]
    settings, req = pending(lake, 1)
    approve_result, revoke_result = race(
        lake.config,
        [
            {"do": "approve", "request_id": req.id, "user": "bob", "expires": EXPIRES},
            {"do": "revoke", "request_id": req.id, "user": "root"},
        ],
    )
    final = governance.get_request(settings, req.id)
    assert final.status == "revoked" and revoke_result == {"status": "revoked"}
    actions = [d.action for d in final.decisions]
    if actions == ["submit", "revoke"]:
        assert approve_result == {"refused": f"request {req.id} is revoked"}
    else:
        assert actions == ["submit", "approve", "revoke"] and approve_result == {"status": "approved"}
    assert not governance.may_run(settings, req.id).allowed
    assert governance.verify_audit(settings).ok


def test_many_processes_keep_one_audit_chain(lake: Lake, race) -> None:  # type: ignore[no-untyped-def]
    settings, req = pending(lake, 3)
    others = [pending(lake, 3)[1] for _ in range(2)]
    actions = [
        {"do": "approve", "request_id": r.id, "user": u, "expires": EXPIRES}
        for r in (req, *others)
        for u in ("bob", "carol")
    ]
    results = race(lake.config, actions)
    assert all(r == {"status": "pending"} for r in results)
    for r in (req, *others):
        assert sorted(governance.get_request(settings, r.id).approvers) == ["bob", "carol"]
    check = governance.verify_audit(settings)
    assert check.ok and check.events == 3 + len(actions)
