"""The audit chain: every governed command appends a PHI-free event; tampering with the
stored Delta table (edit, delete, reorder, truncate, rewrite) is detected and named."""

from __future__ import annotations

import json
from datetime import date

import pyarrow.parquet as pq
import pytest
from conftest import NOW
from deltalake import write_deltalake

from lakehouse import governance
from lakehouse.errors import LakeError, Refused
from lakehouse.lake import table as lake_table


def fill_chain(settings) -> str:  # type: ignore[no-untyped-def]
    req = governance.submit_request(
        settings,
        user="alice",
        project="lungs",
        title="t",
        purpose="p",
        protocol="IRB-1",
        cohort={"patient_ids": ["PAT-2"]},
        options=[],
        now=NOW,
    )
    governance.show_request(settings, req.id, user="olga", now=NOW)
    governance.approve(settings, req.id, user="bob", expires=date(2025, 5, 1), now=NOW)
    governance.add_optout(settings, user="root", patient_id="PAT-3", reason="letter")
    governance.revoke(settings, req.id, user="root", reason="done", now=NOW)
    return req.id


def rewrite(settings, rows) -> None:  # type: ignore[no-untyped-def]
    """Tamper for real: overwrite the audit table with the given rows through deltalake."""
    loc = lake_table(settings, "audit")
    write_deltalake(loc.uri, loc.spec.to_arrow(rows), mode="overwrite", storage_options=loc.storage_options)


def stored(settings) -> list[dict]:  # type: ignore[type-arg, no-untyped-def]
    return lake_table(settings, "audit").read().sort_by("seq").to_pylist()


def test_commands_append_phi_free_events(settings) -> None:  # type: ignore[no-untyped-def]
    request_id = fill_chain(settings)
    rows = stored(settings)
    assert [r["action"] for r in rows] == [
        "request.submit",
        "request.show",
        "request.approve",
        "optout.add",
        "request.revoke",
    ]
    assert [r["user"] for r in rows] == ["alice", "olga", "bob", "root", "root"]
    assert all(r["request_id"] == request_id for r in rows if r["action"].startswith("request."))
    approve = json.loads(rows[2]["details_json"])
    assert approve["manifest_entries"] == 2 and len(approve["manifest_sha256"]) == 64
    submit = json.loads(rows[0]["details_json"])
    assert submit["preview_instances"] == 2 and len(submit["cohort_sha256"]) == 64
    text = json.dumps(rows, default=str)
    for phi in ("PAT-", "Name^", "ACC1", "2.25.", "1.2.3.10", "letter"):
        assert phi not in text
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, len(rows)))
    result = governance.verify_audit(settings)
    assert result.ok and result.events == 5 and result.first_broken is None
    assert result.head_hash == rows[-1]["hash"] and result.recorded_head_seq == 4


def test_refusals_are_audited(settings) -> None:  # type: ignore[no-untyped-def]
    req = governance.submit_request(
        settings,
        user="alice",
        project="p",
        title="t",
        purpose="p",
        protocol="IRB-1",
        cohort={},
        options=[],
        now=NOW,
    )
    governance.reject(settings, req.id, user="carol", reason="no", now=NOW)
    with pytest.raises(Refused):
        governance.approve(settings, req.id, user="bob", expires=date(2025, 5, 1), now=NOW)
    last = stored(settings)[-1]
    assert last["action"] == "request.approve.refused" and last["user"] == "bob"
    assert json.loads(last["details_json"]) == {"reason": f"request {req.id} is rejected"}
    with pytest.raises(LakeError, match="only flat counts"):
        governance.append_audit(settings, user="x", action="y", details={"nested": [{"a": 1}]})


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "truncate", "duplicate"])
def test_tampering_is_detected(settings, tamper: str) -> None:  # type: ignore[no-untyped-def]
    fill_chain(settings)
    rows = stored(settings)
    if tamper == "edit":
        rows[2]["user"] = "carol"
        expected = (2, "event edited")
    elif tamper == "delete":
        del rows[1]
        expected = (1, "seq 2 where 1 was expected")
    elif tamper == "reorder":
        rows[1]["seq"], rows[3]["seq"] = 3, 1
        expected = (1, "prev_hash does not match")
    elif tamper == "truncate":
        rows = rows[:3]
        expected = (3, "events cut from the end")
    else:
        rows.insert(2, dict(rows[1]))
        expected = (2, "seq 1 where 2 was expected")
    rewrite(settings, rows)
    result = governance.verify_audit(settings)
    assert not result.ok
    assert result.first_broken is not None
    assert (result.first_broken.index, True) == (expected[0], expected[1] in result.first_broken.problem)


def test_editing_the_parquet_file_in_place_is_detected(settings) -> None:  # type: ignore[no-untyped-def]
    if settings.restricted.is_s3:
        pytest.skip("in-place file edit is a local-folder attack; S3 is covered by the rewrites above")
    fill_chain(settings)
    loc = lake_table(settings, "audit")
    table = loc.open()
    assert table is not None
    for uri in table.file_uris():
        path = uri.removeprefix("file://")
        data = pq.read_table(path).to_pylist()
        if data[0]["action"] == "request.submit":
            data[0]["details_json"] = data[0]["details_json"].replace(
                '"project":"lungs"', '"project":"other"'
            )
            pq.write_table(loc.spec.to_arrow(data), path)  # type: ignore[union-attr]
    result = governance.verify_audit(settings)
    assert not result.ok and result.first_broken is not None
    # Either the file no longer matches the Delta log, or it reads and the chain catches the edit.
    problem = result.first_broken.problem
    assert "data files altered or missing" in problem or "event edited" in problem


def forge_from(settings, index: int) -> None:  # type: ignore[no-untyped-def]
    """Forge the user of event ``index`` and recompute every hash from it on."""
    from lakehouse.governance.audit import event_hash

    rows = stored(settings)
    rows[index]["user"] = "carol"
    prev = rows[index - 1]["hash"]
    for row in rows[index:]:
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(row)
    rewrite(settings, rows)


def test_rewrite_after_the_last_checkpoint_needs_a_witnessed_head(settings) -> None:  # type: ignore[no-untyped-def]
    fill_chain(settings)
    witnessed = governance.verify_audit(settings).head_hash
    forge_from(settings, 4)  # the revoke's own event: no decision recorded a head after it
    assert governance.verify_audit(settings).ok  # a keyless chain cannot see this on its own
    result = governance.verify_audit(settings, expect_head=witnessed)
    assert not result.ok and result.first_broken and "chain rewritten" in result.first_broken.problem


def test_rewrite_before_a_decision_is_caught_by_its_checkpoint(settings) -> None:  # type: ignore[no-untyped-def]
    request_id = fill_chain(settings)
    forge_from(settings, 2)  # the approval's event; the revoke recorded the head after it
    result = governance.verify_audit(settings)
    assert not result.ok and result.first_broken is not None
    assert f"event 3 of request {request_id} recorded audit head" in result.first_broken.problem
