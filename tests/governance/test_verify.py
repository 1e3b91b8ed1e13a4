"""The export's proof before its first archive read (lakehouse.governance.verify), tried as an
insider with write access to the restricted zone would: forged decision rows with audit
events whose hashes are right, unsigned or wrongly signed decisions, replayed signatures,
signers without the role or the key at that time, a manifest wider than its cohort."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, ROLES, Lake, catalog_row, standard_catalog, write_catalog
from deltalake import write_deltalake
from signers import Signer, make_signer

from lakehouse import governance
from lakehouse.config import Settings
from lakehouse.errors import Refused
from lakehouse.export.run import run_export
from lakehouse.governance.audit import canonical
from lakehouse.governance.manifest import entries_from, write_manifest
from lakehouse.governance.signing import decision_payload, sign_decision
from lakehouse.lake import table as lake_table

EXPIRES = date(2025, 6, 30)
CT = {"modalities": ["CT"]}
LOCAL = pytest.mark.parametrize("lake", ["local"], indirect=True)  # the S3 paths: the first two tests


class Board:
    """A lake in ``os`` mode whose approvers and admin sign with their own keys."""

    def __init__(self, lake: Lake, tmp_path: Path, mode: str = "os", signed: bool = True) -> None:
        self.lake = lake
        self.signers = {
            n: make_signer(tmp_path / "keys", n) for n in ("bob", "carol", "dave", "amir", "root")
        }
        self.lines = [s.line() for s in self.signers.values()] if signed else []
        self.mode = mode
        self.settings = self.configure()
        write_catalog(self.settings, standard_catalog())

    def configure(self, **changes: Any) -> Settings:
        options: dict[str, Any] = {"mode": self.mode, "allowed_signers": self.lines, **changes}
        return self.lake.settings(**options)

    def as_(self, name: str, settings: Settings | None = None) -> Settings:
        return self.signers[name].acting(settings or self.settings)

    def submit(self, cohort: dict[str, Any] | None = None, user: str = "alice") -> governance.Request:
        return governance.submit_request(
            self.settings,
            user=user,
            project="lungs",
            title="CT",
            purpose="nodules",
            protocol="IRB-1",
            cohort=CT if cohort is None else cohort,
            options=[],
            now=NOW,
        )

    def approve(self, request_id: str, user: str = "bob") -> governance.Request:
        return governance.approve(self.as_(user), request_id, user=user, expires=EXPIRES, now=NOW)


@pytest.fixture
def board(lake: Lake, tmp_path: Path) -> Board:
    return Board(lake, tmp_path)


def approval(request: governance.Request, user: str, **values: Any) -> dict[str, Any]:
    """An approve row as the forger writes it (``os`` mode, expiry and quorum filled in)."""
    return {
        "request_id": request.id,
        "action": "approve",
        "user": user,
        "at": NOW,
        "expires": EXPIRES,
        "approvals_required": 1,
        "identity_mode": "os",
        **values,
    }


def signed(
    signer: Signer, settings: Settings, request: governance.Request, row: dict[str, Any]
) -> dict[str, Any]:
    """``row`` with ``signer``'s real signature over it, at the request's next position."""
    row = {**row, "seq": next_seq(settings, row["request_id"])}
    payload = decision_payload(
        row, options=request.options, cohort_json=canonical(request.cohort), requester=request.requester
    )
    return {**row, "signature": sign_decision(signer.acting(settings), payload)}


def next_seq(settings: Settings, request_id: str) -> int:
    events = lake_table(settings, "governance_events").read(filters=[("request_id", "=", request_id)])
    return max(r["seq"] for r in events.to_pylist()) + 1


def forge(settings: Settings, row: dict[str, Any]) -> None:
    """What a script with write access to the restricted zone can do: append a decision row and
    the audit event that makes it effective, its hash correct (the chain stays green)."""
    events = lake_table(settings, "governance_events")
    request_id = row["request_id"]
    seq = row.get("seq") or next_seq(settings, request_id)
    stored = {"event_id": uuid.uuid4().hex, **row, "seq": seq}
    events.append_serialized(f"request:{request_id}", lambda _s: (events.spec.to_arrow([stored]), seq, None))
    governance.append_audit(
        settings,
        user=row["user"],
        action=f"request.{row['action']}",
        request_id=request_id,
        details={"status": "approved"},
        now=NOW,
        subject_event_id=stored["event_id"],
    )


def refusal(settings: Settings, request_id: str) -> str:
    return refusal_at(settings, request_id, NOW)


def refusal_at(settings: Settings, request_id: str, now: datetime) -> str:
    permission = governance.may_run(settings, request_id, now=now)
    assert not permission.allowed and permission.reason
    return permission.reason


def wide_catalog(settings: Settings) -> list[dict[str, Any]]:
    """2 CT instances and 46 MR ones: the cohort {CT} covers 2 of 48 objects."""
    rows = [
        catalog_row(f"W/CT/{i}.dcm", patient="PAT-W", study="1.2.9.1", series="1.2.9.1.1") for i in range(2)
    ]
    rows += [
        catalog_row(
            f"W/MR/{i}.dcm",
            patient=f"PAT-M{i}",
            study=f"1.2.9.{i + 2}",
            series=f"1.2.9.{i + 2}.1",
            modality="MR",
        )
        for i in range(46)
    ]
    write_catalog(settings, rows, mode="overwrite")
    return rows


def test_signed_decisions_record_mode_version_and_signature(board: Board) -> None:
    req = board.submit()
    approved = board.approve(req.id)
    assert approved.status == "approved"
    (row,) = [
        r
        for r in lake_table(board.settings, "governance_events").read().to_pylist()
        if r["action"] == "approve"
    ]
    assert row["identity_mode"] == "os" and len(row["signature"]) == 88
    assert row["catalog_version"] == lake_table(board.settings, "catalog").version()
    permission = governance.may_run(board.settings, req.id, now=NOW)
    assert permission.allowed, permission.reason
    revoked = governance.revoke(board.as_("root"), req.id, user="root", reason="done", now=NOW)
    assert revoked.status == "revoked"
    rows = lake_table(board.settings, "governance_events").read().to_pylist()
    assert all(r["signature"] for r in rows if r["action"] in ("approve", "revoke"))


@LOCAL
def test_unsigned_or_unverifiable_decisions_are_refused_when_made(board: Board) -> None:
    req = board.submit()
    with pytest.raises(Refused, match="decisions must be signed"):
        governance.approve(board.settings, req.id, user="bob", expires=EXPIRES, now=NOW)
    with pytest.raises(Refused, match="decisions must be signed"):
        governance.reject(board.settings, req.id, user="carol", reason="no", now=NOW)
    with pytest.raises(Refused, match="signature of bob does not verify"):  # carol's key, bob's name
        governance.approve(board.as_("carol"), req.id, user="bob", expires=EXPIRES, now=NOW)
    unlisted = board.configure(allowed_signers=[board.signers["carol"].line()])
    with pytest.raises(Refused, match="bob has no key in \\[policy\\] allowed_signers"):
        governance.approve(board.as_("bob", unlisted), req.id, user="bob", expires=EXPIRES, now=NOW)
    assert governance.get_request(board.settings, req.id, now=NOW).status == "pending"


def test_forged_approval_and_wide_manifest_are_refused_before_any_read(board: Board) -> None:
    """The issue's attack: an approve event "by bob" and a 48-entry manifest appended to a pending
    request whose cohort covers 2 instances, with an audit event whose hash is right."""
    settings = board.settings
    catalog = wide_catalog(settings)
    req = board.submit()
    assert governance.preview(settings, req.cohort).instances == 2
    manifest = entries_from(lake_table(settings, "catalog").spec.to_arrow(catalog))
    sha = write_manifest(settings, req.id, manifest)
    version = lake_table(settings, "catalog").version()
    forge(settings, approval(req, "bob", manifest_sha256=sha, manifest_entries=48, catalog_version=version))
    assert governance.get_request(settings, req.id, now=NOW).status == "approved"  # as the rows say
    assert governance.verify_audit(settings).ok
    reason = (
        f"request {req.id} may not be exported: approve on request {req.id}: decision by bob is not signed"
    )
    with pytest.raises(Refused) as refused:
        run_export(settings, req.id, user="olga", now=NOW)
    assert str(refused.value) == reason
    audit = lake_table(settings, "audit").read().to_pylist()
    assert [json.loads(r["details_json"]) for r in audit if r["action"] == "export.refused"] == [
        {"reason": reason}
    ]

    # An approver with a real key signing the wide manifest himself is refused too: it is recomputed.
    req2 = board.submit()
    sha2 = write_manifest(settings, req2.id, manifest)
    row = approval(req2, "bob", manifest_sha256=sha2, manifest_entries=48, catalog_version=version)
    forge(settings, signed(board.signers["bob"], settings, req2, row))
    assert refusal(settings, req2.id) == (
        f"request {req2.id}: the manifest holds 46 of 48 objects its cohort does not select at catalog version {version}"
    )


@LOCAL
def test_wrong_key_replayed_signature_and_key_not_allowed(board: Board, tmp_path: Path) -> None:
    settings = board.settings
    first, second = board.submit(), board.submit()
    board.approve(first.id)
    (genuine,) = [
        r
        for r in lake_table(settings, "governance_events")
        .read(filters=[("request_id", "=", first.id)])
        .to_pylist()
        if r["action"] == "approve"
    ]
    sha = write_manifest(settings, second.id, governance.load_manifest(settings, first.id))
    values = {k: genuine[k] for k in ("expires", "approvals_required", "manifest_entries", "catalog_version")}
    # bob's signature from the first request, replayed on the second
    forge(settings, approval(second, "bob", **values, manifest_sha256=sha, signature=genuine["signature"]))
    assert refusal(settings, second.id) == (
        f"approve on request {second.id}: signature of bob does not verify with their allowed_signers key"
    )
    third = board.submit()
    sha3 = write_manifest(settings, third.id, governance.load_manifest(settings, first.id))
    mallory = make_signer(tmp_path / "mallory", "bob")  # a key of the forger's own, named bob
    row = approval(third, "bob", **values, manifest_sha256=sha3)
    forge(settings, signed(mallory, board.configure(allowed_signers=[mallory.line()]), third, row))
    assert "signature of bob does not verify" in refusal(settings, third.id)
    # the genuine approval is refused once bob's key leaves allowed_signers
    without_bob = board.configure(allowed_signers=[s.line() for n, s in board.signers.items() if n != "bob"])
    assert (
        refusal(without_bob, first.id)
        == f"approve on request {first.id}: bob has no key in [policy] allowed_signers"
    )
    assert governance.may_run(board.configure(), first.id, now=NOW).allowed


@LOCAL
def test_signer_needs_the_role_and_the_key_at_that_time(board: Board) -> None:
    req = board.submit()
    board.approve(req.id)
    closed = [s.line('valid-before="20250201"') if n == "bob" else s.line() for n, s in board.signers.items()]
    assert refusal(board.configure(allowed_signers=closed), req.id) == (
        f"approve on request {req.id}: no key of bob in allowed_signers was valid at 2025-03-01T12:00:00Z"
    )
    later = [s.line('valid-after="20250302"') if n == "bob" else s.line() for n, s in board.signers.items()]
    assert "no key of bob" in refusal(board.configure(allowed_signers=later), req.id)
    roles = ROLES.replace('approvers = ["bob", ', "approvers = [")
    assert refusal(board.configure(roles=roles), req.id) == (
        f"approve by bob on request {req.id}: bob is not in [roles] approvers"
    )


@LOCAL
def test_mode_quorum_and_duties_come_from_the_config_now(board: Board) -> None:
    req = board.submit()
    board.approve(req.id)
    assert refusal(board.configure(approvals=2), req.id) == (
        f"request {req.id}: 1 distinct approvers, the policy requires 2"
    )
    assert refusal(board.configure(mode="asserted"), req.id) == (
        f"approve by bob on request {req.id} was made under identity mode os; the config requires asserted"
    )
    # amir requests, then a script records amir's own signed approval of it
    own = board.submit(user="amir")
    entries = governance.load_manifest(board.settings, req.id)  # the same cohort: a true manifest
    row = approval(
        own,
        "amir",
        manifest_sha256=write_manifest(board.settings, own.id, entries),
        manifest_entries=len(entries),
        catalog_version=lake_table(board.settings, "catalog").version(),
    )
    forge(board.settings, signed(board.signers["amir"], board.settings, own, row))
    # refused when the events are read (no command records that transition), and again by the proof
    assert refusal(board.settings, own.id) in (
        f"governance events of request {own.id} are inconsistent: approve at seq 2 while pending",
        f"request {own.id}: separation of duties: the requester approved it",
    )


@LOCAL
def test_manifest_is_recomputed_at_the_recorded_catalog_version(board: Board) -> None:
    settings = board.settings
    governance.add_optout(settings, user="root", patient_id="PAT-2", reason="letter")
    req = board.submit()
    approved = board.approve(req.id)
    assert approved.manifest_entries == 2  # PAT-2's CT left out
    # the catalog moves on: more CT objects, a changed object; the approval still holds
    write_catalog(
        settings,
        [
            catalog_row("P9/S9/a.dcm", patient="PAT-9", study="1.2.3.109", series="1.2.3.109.1"),
            catalog_row(
                "P1/S1/a.dcm", patient="PAT-1", study="1.2.3.101", series="1.2.3.101.1", etag="changed"
            ),
        ],
    )
    assert governance.may_run(settings, req.id, now=NOW).allowed
    # an opt-out after the approval: the export withholds it later, the proof still holds
    governance.add_optout(settings, user="root", patient_id="PAT-1", reason="letter")
    assert governance.may_run(settings, req.id, now=NOW).allowed


@LOCAL
def test_demo_root_still_recomputes_the_manifest(lake: Lake, tmp_path: Path) -> None:
    """asserted names and no allowed_signers (a demo): nothing is signed, the manifest is still
    checked against the cohort, and a forged narrower or unversioned approval is refused."""
    board = Board(lake, tmp_path, mode="asserted", signed=False)
    settings = board.settings
    req = board.submit()
    approved = governance.approve(settings, req.id, user="bob", expires=EXPIRES, now=NOW)
    assert approved.status == "approved" and governance.may_run(settings, req.id, now=NOW).allowed
    full = governance.load_manifest(settings, req.id)
    narrow = board.submit()
    sha = write_manifest(settings, narrow.id, full[:-1])
    version = lake_table(settings, "catalog").version()
    forge(
        settings,
        approval(
            narrow,
            "carol",
            identity_mode="asserted",
            manifest_sha256=sha,
            manifest_entries=2,
            catalog_version=version,
        ),
    )
    assert refusal(settings, narrow.id) == (
        f"request {narrow.id}: the manifest leaves out 1 objects its cohort selects at catalog version {version}"
    )
    old = board.submit()
    sha = write_manifest(settings, old.id, full)
    forge(settings, approval(old, "carol", identity_mode=None, manifest_sha256=sha, manifest_entries=3))
    assert (
        refusal(settings, old.id)
        == f"request {old.id}: its approval records no catalog version; submit it again"
    )
    assert refusal_at(settings, req.id, datetime(2025, 7, 1, tzinfo=UTC)) == f"request {req.id} is expired"


@LOCAL
def test_rewritten_request_breaks_the_approvers_signature(board: Board) -> None:
    """Overwriting the submit row (a wider cohort, another requester) leaves the approval's
    signature over the old one: the recomputed manifest would match, the signature does not."""
    settings = board.settings
    req = board.submit({"modalities": ["CT"], "patient_ids": ["PAT-1"]})
    board.approve(req.id)
    assert governance.may_run(settings, req.id, now=NOW).allowed
    events = lake_table(settings, "governance_events")
    rows = events.read().to_pylist()
    for row in rows:
        if row["action"] == "submit":
            row["cohort_json"] = canonical({"modalities": ["CT"]})
    write_deltalake(
        events.uri, events.spec.to_arrow(rows), mode="overwrite", storage_options=events.storage_options
    )
    assert refusal(settings, req.id) == (
        f"approve on request {req.id}: signature of bob does not verify with their allowed_signers key"
    )
