"""Request lifecycle: submit, preview, approve (duties, quorum, policy), freeze, reject,
revoke, expiry and the export gate, on local folders and on S3."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest
from conftest import NOW, Lake, catalog_row, standard_catalog, write_catalog

from lakehouse import governance
from lakehouse.errors import Refused
from lakehouse.governance.manifest import manifest_sha256
from lakehouse.lake import table as lake_table

CT_COHORT = {"modalities": ["CT"]}


def submit(settings, cohort=None, user="alice", options=None, now=NOW):  # type: ignore[no-untyped-def]
    return governance.submit_request(
        settings,
        user=user,
        project="lungs",
        title="CT chest",
        purpose="nodule detection",
        protocol="IRB-2025-01",
        cohort=CT_COHORT if cohort is None else cohort,
        options=options or [],
        now=now,
    )


def test_lifecycle_submit_approve_gate_revoke(settings) -> None:  # type: ignore[no-untyped-def]
    req = submit(settings, options=["retain-full-dates"])
    assert req.status == "pending" and req.requester == "alice" and req.options == ["retain-full-dates"]
    assert governance.may_run(settings, req.id, now=NOW).allowed is False

    approved = governance.approve(settings, req.id, user="bob", expires=date(2025, 6, 30), note="ok", now=NOW)
    assert approved.status == "approved"
    assert approved.expires == date(2025, 6, 30)
    assert approved.manifest_entries == 3
    manifest = governance.load_manifest(settings, req.id)
    assert [e.key for e in manifest] == ["P1/S1/a.dcm", "P1/S1/b.dcm", "P2/S2/a.dcm"]
    assert manifest[0].etag == "etag-P1/S1/a.dcm" and manifest[0].sop_instance_uid.startswith("2.25.")
    assert manifest_sha256(req.id, manifest) == approved.manifest_sha256
    permission = governance.may_run(settings, req.id, now=NOW)
    assert permission.allowed and permission.reason is None and permission.request.id == req.id

    revoked = governance.revoke(settings, req.id, user="root", reason="consent withdrawn", now=NOW)
    assert revoked.status == "revoked"
    assert [d.action for d in revoked.decisions] == ["submit", "approve", "revoke"]
    gate = governance.may_run(settings, req.id, now=NOW)
    assert not gate.allowed and gate.reason == f"request {req.id} is revoked"
    with pytest.raises(Refused, match="is revoked"):
        governance.revoke(settings, req.id, user="root", reason="again", now=NOW)

    # A second reader sees the same append-only history in the events table.
    events = governance.list_requests(settings, project="lungs")
    assert [r.id for r in events] == [req.id]
    assert governance.list_requests(settings, status="pending") == []
    events = lake_table(settings, "governance_events")
    got = pl.read_delta(events.uri, storage_options=events.storage_options or None).sort("seq")
    assert got.select("action", "seq").rows() == [("submit", 1), ("approve", 2), ("revoke", 3)]


def test_preview_counts_only(settings) -> None:  # type: ignore[no-untyped-def]
    everything = governance.preview(settings, {})
    risk = everything.to_dict().pop("risk")  # counts and attribute names only (tests/deid/test_risk.py)
    assert risk["floor_off"] and risk["before"]["patients"] == 3
    assert "k = 1 before" in everything.summary_line() and "PAT-" not in str(risk)
    assert {k: v for k, v in everything.to_dict().items() if k != "risk"} == {
        "patients": 3,
        "studies": 4,
        "series": 4,
        "instances": 5,
        "bytes": 8300,
        "modalities": {"CT": 3, "MR": 1, "US": 1},
        "burned_in_risk": 1,
        "opted_out_excluded": 0,
        "read_with_warnings": {},
        "unexportable": 0,
    }
    brain = governance.preview(settings, {"description_contains": "brain", "study_date_to": "2023-12-31"})
    assert (brain.patients, brain.instances, brain.modalities) == (1, 1, {"MR": 1})
    assert "PAT-" not in brain.summary_line()
    first = governance.preview(settings, {"max_studies": 1})
    assert (first.studies, first.modalities) == (1, {"MR": 1})  # oldest study first
    by_id = governance.preview(settings, {"patient_ids": ["PAT-1"], "accession_numbers": ["ACC101"]})
    assert by_id.instances == 2


@pytest.mark.parametrize(
    ("cohort", "reason"),
    [
        ({"modality": ["CT"]}, "unknown criterion 'modality'"),
        ({"modalities": "CT"}, "modalities must be a non-empty list"),
        ({"modalities": ["ct"]}, "modalities item 1 is not a valid value"),
        ({"study_date_from": "2024-13-01"}, "study_date_from must be a date"),
        ({"study_date_from": "2024-02-01", "study_date_to": "2024-01-01"}, "after study_date_to"),
        ({"sop_classes": ["1.2.x"]}, "sop_classes item 1"),
        ({"max_studies": 0}, "max_studies must be a whole number from 1 to 1000000000"),
        ({"max_studies": 2**63}, "max_studies must be a whole number from 1 to 1000000000"),
        ({"max_studies": 10**30}, "max_studies must be a whole number from 1 to 1000000000"),
        ({"max_studies": 1.5}, "max_studies must be a whole number"),
        ({"patient_ids": []}, "patient_ids must be a non-empty list"),
        (["CT"], "cohort must be a mapping"),
    ],
)
def test_invalid_cohorts_refused_with_one_line_reason(settings, cohort, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused, match=reason) as err:
        submit(settings, cohort=cohort)
    assert "\n" not in str(err.value)


def test_invalid_options_and_fields_refused(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused, match="unknown de-identification option 'keep-names'"):
        submit(settings, options=["keep-names"])
    with pytest.raises(Refused, match="mutually exclusive"):
        submit(settings, options=["retain-full-dates", "retain-modified-dates"])
    with pytest.raises(Refused, match="purpose is required"):
        governance.submit_request(
            settings, user="alice", project="p", title="t", purpose=" ", protocol="IRB", cohort={}, options=[]
        )
    assert governance.list_requests(settings) == []


def test_roles_and_separation_of_duties(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused, match="unknown user 'mallory'"):
        submit(settings, user="mallory")
    with pytest.raises(Refused, match="not in \\[roles\\] requesters"):
        submit(settings, user="bob")
    req = submit(settings, user="amir")  # amir is requester and approver
    with pytest.raises(Refused, match="separation of duties"):
        governance.approve(settings, req.id, user="amir", expires=date(2025, 4, 1), now=NOW)
    with pytest.raises(Refused, match="not in \\[roles\\] approvers"):
        governance.approve(settings, req.id, user="olga", expires=date(2025, 4, 1), now=NOW)
    with pytest.raises(Refused, match="only admins or an approver of request"):
        governance.revoke(settings, req.id, user="carol", reason="no", now=NOW)
    assert governance.get_request(settings, req.id).status == "pending"
    with pytest.raises(Refused, match="no request req-000000000000"):
        governance.get_request(settings, "req-000000000000")


def test_quorum_of_distinct_approvers(lake: Lake) -> None:
    settings = lake.settings(approvals=2)
    write_catalog(settings, standard_catalog())
    req = submit(settings)
    first = governance.approve(settings, req.id, user="bob", expires=date(2025, 9, 1), now=NOW)
    assert first.status == "pending" and first.manifest_sha256 is None
    assert governance.may_run(settings, req.id, now=NOW).reason == f"request {req.id} is pending"
    with pytest.raises(Refused, match="already approved by bob"):
        governance.approve(settings, req.id, user="bob", expires=date(2025, 9, 1), now=NOW)
    second = governance.approve(settings, req.id, user="carol", expires=date(2025, 5, 1), now=NOW)
    assert second.status == "approved" and second.approvers == ["bob", "carol"]
    assert second.expires == date(2025, 5, 1)  # the shortest approval wins
    assert [d.manifest_sha256 is not None for d in second.decisions] == [False, False, True]
    with pytest.raises(Refused, match="is approved"):
        governance.approve(settings, req.id, user="dave", expires=date(2025, 5, 1), now=NOW)


def test_validity_policy_and_expiry_with_injected_clock(lake: Lake) -> None:
    settings = lake.settings(max_days=30)
    write_catalog(settings, standard_catalog())
    req = submit(settings)
    with pytest.raises(Refused, match="beyond the policy maximum of 30 days"):
        governance.approve(settings, req.id, user="bob", expires=NOW.date() + timedelta(days=31), now=NOW)
    with pytest.raises(Refused, match="in the past"):
        governance.approve(settings, req.id, user="bob", expires=NOW.date() - timedelta(days=1), now=NOW)
    expires = NOW.date() + timedelta(days=30)
    governance.approve(settings, req.id, user="bob", expires=expires, now=NOW)
    last_valid = datetime.combine(expires, datetime.max.time(), NOW.tzinfo)
    assert governance.may_run(settings, req.id, now=last_valid).allowed
    later = last_valid + timedelta(microseconds=1)
    gate = governance.may_run(settings, req.id, now=later)
    assert not gate.allowed and gate.reason == f"request {req.id} is expired"
    assert governance.get_request(settings, req.id, now=later).status == "expired"
    assert [r.id for r in governance.list_requests(settings, status="expired", now=later)] == [req.id]


def test_reject_is_final(settings) -> None:  # type: ignore[no-untyped-def]
    req = submit(settings)
    rejected = governance.reject(settings, req.id, user="carol", reason="purpose too broad", now=NOW)
    assert rejected.status == "rejected" and rejected.decisions[-1].reason == "purpose too broad"
    with pytest.raises(Refused, match="is rejected"):
        governance.approve(settings, req.id, user="bob", expires=date(2025, 4, 1), now=NOW)
    with pytest.raises(Refused, match="is rejected"):
        governance.revoke(settings, req.id, user="root", reason="x", now=NOW)
    assert not governance.may_run(settings, req.id, now=NOW).allowed


def test_manifest_frozen_against_a_changing_catalog(settings) -> None:  # type: ignore[no-untyped-def]
    req = submit(settings)
    preview_before = governance.preview(settings, CT_COHORT)
    approved = governance.approve(settings, req.id, user="bob", expires=date(2025, 6, 1), now=NOW)
    frozen = governance.load_manifest(settings, req.id)

    # The catalog changes: a new CT object, one object rewritten (new etag), one deleted.
    rows = standard_catalog()
    rows[0] = catalog_row(
        "P1/S1/a.dcm", patient="PAT-1", study="1.2.3.101", series="1.2.3.101.1", etag="changed"
    )
    rows[2]["deleted"] = True
    rows.append(catalog_row("P9/S9/a.dcm", patient="PAT-9", study="1.2.3.109", series="1.2.3.109.1"))
    write_catalog(settings, rows, mode="overwrite")
    assert governance.preview(settings, CT_COHORT).instances == preview_before.instances  # 3 - 1 + 1

    assert governance.load_manifest(settings, req.id) == frozen
    assert governance.get_request(settings, req.id).manifest_sha256 == approved.manifest_sha256
    assert governance.may_run(settings, req.id, now=NOW).allowed

    # A request approved now freezes the new state.
    again = governance.approve(settings, submit(settings).id, user="bob", expires=date(2025, 6, 1), now=NOW)
    keys = [e.key for e in governance.load_manifest(settings, again.id)]
    assert keys == ["P1/S1/a.dcm", "P1/S1/b.dcm", "P9/S9/a.dcm"]


def test_optout_excluded_when_freezing(settings) -> None:  # type: ignore[no-untyped-def]
    req = submit(settings)
    with pytest.raises(Refused, match="not in \\[roles\\] admins"):
        governance.add_optout(settings, user="bob", patient_id="PAT-1", reason="letter")
    governance.add_optout(settings, user="root", patient_id="PAT-1", reason="letter 2025-02")
    governance.add_optout(settings, user="root", patient_id="PAT-1", reason="duplicate letter")
    assert governance.opted_out_patient_ids(settings) == {"PAT-1"}
    assert [o.reason for o in governance.list_optouts(settings, user="root")] == ["letter 2025-02"]
    with pytest.raises(Refused):
        governance.list_optouts(settings, user="olga")

    preview = governance.preview(settings, CT_COHORT)
    assert (preview.instances, preview.opted_out_excluded) == (1, 2)
    governance.approve(settings, req.id, user="bob", expires=date(2025, 6, 1), now=NOW)
    assert {e.patient_id for e in governance.load_manifest(settings, req.id)} == {"PAT-2"}

    only_optedout = submit(settings, cohort={"patient_ids": ["PAT-1"]})
    with pytest.raises(Refused, match="resolves to no archive objects"):
        governance.approve(settings, only_optedout.id, user="bob", expires=date(2025, 6, 1), now=NOW)
    assert governance.get_request(settings, only_optedout.id).status == "pending"


def test_tampered_manifest_refused(settings) -> None:  # type: ignore[no-untyped-def]
    from deltalake import write_deltalake

    req = submit(settings)
    governance.approve(settings, req.id, user="bob", expires=date(2025, 6, 1), now=NOW)
    loc = lake_table(settings, "governance_manifests")
    rows = loc.read().to_pylist()
    rows[0]["etag"] = "swapped-object"
    write_deltalake(loc.uri, loc.spec.to_arrow(rows), mode="overwrite", storage_options=loc.storage_options)

    with pytest.raises(Refused, match="does not match its recorded hash"):
        governance.load_manifest(settings, req.id)
    gate = governance.may_run(settings, req.id, now=NOW)
    assert not gate.allowed and "does not match its recorded hash" in (gate.reason or "")

    write_deltalake(
        loc.uri, loc.spec.to_arrow(rows[1:]), mode="overwrite", storage_options=loc.storage_options
    )
    assert not governance.may_run(settings, req.id, now=NOW).allowed
