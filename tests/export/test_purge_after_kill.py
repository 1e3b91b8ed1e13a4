"""Everything published can be withdrawn whatever crashed: a run killed (SIGKILL) at every
commit boundary, then a patient's opt-out purge or a request's revoke-and-purge, leaves
nothing of the patient or request in tables, objects, lineage or staging; the patient's
run then resumes to exactly the uninterrupted run less that patient."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from export_testing import PROJECT
from forked_cli import CliServer
from lake_check import LakeView, broken_invariants, differences, view, without
from lakehouse_testing import Prepared

from lakehouse.export import purge_patient
from lakehouse.export.keys import load_project_key
from lakehouse.workflows import revoke_request

# Every point between two steps of the publish, in run order (``export.run`` / ``export.commit``).
BOUNDARIES = [
    "before_publish",
    "after_commit:lineage",
    "after_publish",
    "after_commit:studies",
    "after_commit:series",
    "after_commit:instances",
    "after_commit:attributes",
    "after_commit:quarantine",
    "before_discard",
]


def _export(cli: CliServer, prepared: Prepared, out: Path, kill_at: str | None = None) -> int:
    env = {"LAKEHOUSE_FAULT_KILL_AT": kill_at} if kill_at else {}
    args = ["export", "run", prepared.request_id, "--config", str(prepared.config), "--user", "olga", "--json"]
    code, _child = cli.run(args, out, env)
    return code


@pytest.fixture(scope="module")
def gated_template(small_template: Prepared, cli_server: CliServer, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """A root whose run was killed once fully staged and gated: a resumed run reaches any
    commit boundary at once (batches and verdicts are read back)."""
    gated = small_template.copy(tmp_path_factory.mktemp("gated") / "lh")
    assert _export(cli_server, gated, gated.root.parent, "before_publish") == -signal.SIGKILL
    return gated


@pytest.fixture(params=BOUNDARIES)
def killed(request: pytest.FixtureRequest, gated_template: Prepared, cli_server: CliServer, tmp_path: Path) -> Prepared:
    """A root whose run was killed (SIGKILL) at one boundary; ``request.param`` names it."""
    prepared = gated_template.copy(tmp_path / "lh")
    assert _export(cli_server, prepared, tmp_path, request.param) == -signal.SIGKILL
    return prepared


def test_a_patient_purged_after_a_kill_is_gone_and_the_run_resumes_without_them(
    killed: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    settings = killed.settings
    key = load_project_key(settings, PROJECT)
    patient = small_baseline.lineage[0]["source_patient_id"]
    theirs = {r["output_key"] for r in small_baseline.lineage if r["source_patient_id"] == patient}

    purge_patient(settings, patient, user="root")
    after = view(killed.root, PROJECT)
    assert not broken_invariants(after, key=key, opted_out={patient}, settled=False)
    assert not theirs & set(after.objects)
    assert not [path for path in after.staged if any(path.endswith(k) for k in theirs)], "their staged objects stay"

    assert _export(cli_server, killed, tmp_path) == 0
    resumed = view(killed.root, PROJECT)
    assert not broken_invariants(resumed, key=key, opted_out={patient})
    assert not differences(resumed, without(small_baseline, {patient}))


def test_a_request_revoked_and_purged_after_a_kill_is_gone(
    killed: Prepared, small_baseline: LakeView, cli_server: CliServer, tmp_path: Path
) -> None:
    settings = killed.settings
    revoke_request(settings, killed.request_id, user="root", reason="consent withdrawn", purge=True)
    after = view(killed.root, PROJECT)
    key = load_project_key(settings, PROJECT)
    assert not broken_invariants(after, key=key, purged_requests={killed.request_id})
    assert not differences(after, without(small_baseline, everything=True))
    (run,) = after.runs  # voided, unless it had succeeded before the kill
    assert run["status"] == ("succeeded" if run["finished_at"] and run["error"] is None else "revoked")
    assert _export(cli_server, killed, tmp_path) == 3  # refused: the request is revoked


def test_rows_without_lineage_are_found_by_keyed_pseudonym_and_request(small: Prepared) -> None:
    """A lake written before lineage came first may hold rows whose lineage never committed:
    a patient's are found by the project's keyed pseudonym of the Patient ID, a request's by
    the request id on every row."""
    from lakehouse import lake
    from lakehouse.export import purge_request, run_export

    settings = small.settings
    run_export(settings, small.request_id, user="olga")
    before = view(small.root, PROJECT)
    patient = before.lineage[0]["source_patient_id"]
    theirs = {r["sop_instance_uid"] for r in before.lineage if r["source_patient_id"] == patient}
    lake.table(settings, "lineage").delete_where(f"project = '{PROJECT}'")

    result = purge_patient(settings, patient, user="root")
    assert result.instances == len(theirs) and result.projects == [PROJECT]
    after = view(small.root, PROJECT)
    assert after.sops == before.sops - theirs and len(after.objects) == len(before.objects) - len(theirs)

    purged = purge_request(settings, small.request_id, user="root")
    assert purged.instances == len(before.sops - theirs)
    gone = view(small.root, PROJECT)
    assert not gone.sops and not gone.objects and all(df.height == 0 for df in gone.tables.values())
