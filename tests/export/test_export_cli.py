"""The export surface as a user meets it: `lakehouse export|optout purge|request revoke --purge|demo`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from export_testing import PROJECT, lakehouse, objects, read_table
from lakehouse_testing import Prepared, reason_lines


def test_export_run_status_and_refusals(prepared: Prepared) -> None:
    config = ["--config", str(prepared.config)]
    refused = lakehouse("export", "run", prepared.request_id, "--user", "alice", *config)
    assert refused.returncode != 0
    assert len(reason_lines(refused.stderr)) == 1 and refused.stderr.startswith("lakehouse: ")

    done = lakehouse("export", "run", prepared.request_id, "--user", "olga", "--json", *config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["exported"] > 0
    assert set(result["table_versions"]) == {"studies", "series", "instances", "attributes", "lineage", "quarantine"}

    # One serializer: `export run`, `export status` and `export list` print the same object.
    status = lakehouse("export", "status", result["run_id"], "--json", *config)
    assert status.returncode == 0 and json.loads(status.stdout) == result
    listed = lakehouse("export", "list", "--request", prepared.request_id, "--json", *config)
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"runs": [result]}
    assert result["error"] is None and result["resumed"] is False

    text = lakehouse("export", "status", result["run_id"], *config)
    assert f"run {result['run_id']}: succeeded" in text.stdout
    assert_readable(text.stdout)
    text_list = lakehouse("export", "list", *config)
    assert text_list.stdout.startswith(result["run_id"]) and "succeeded" in text_list.stdout
    assert lakehouse("export", "list", "--request", "req-other", *config).stdout == "no export runs\n"
    missing = lakehouse("export", "status", "run-nope", *config)
    assert missing.returncode != 0 and "no export run" in missing.stderr


def assert_readable(text: str) -> None:
    """Text output for people: ISO 8601 times, no Python reprs."""
    assert "{'" not in text and "None" not in text and "datetime" not in text
    assert re.search(r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)


def test_optout_purge_and_revoke_purge(prepared: Prepared) -> None:
    config = ["--config", str(prepared.config)]
    assert lakehouse("export", "run", prepared.request_id, "--user", "olga", *config).returncode == 0
    from lakehouse import lake

    patient = lake.table(prepared.settings, "lineage").read().column("source_patient_id")[0].as_py()
    purged = lakehouse("optout", "purge", "--patient-id", patient, "--user", "root", "--json", *config)
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["instances"] > 0
    assert patient not in purged.stdout  # the patient ID is not echoed back
    remaining = read_table(prepared.root, PROJECT, "instances").height
    assert remaining > 0

    revoked = lakehouse("request", "revoke", prepared.request_id, "--reason", "withdrawn", "--purge",
                        "--user", "root", "--json", *config)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["purge"]["instances"] == remaining
    assert objects(prepared.root, PROJECT) == {}
    again = lakehouse("export", "run", prepared.request_id, "--user", "olga", *config)
    assert again.returncode != 0 and "revoked" in again.stderr


def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    result = lakehouse("demo", str(tmp_path / "demo"), "--patients", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["export"]["status"] == "succeeded" and data["export"]["exported"] > 0
    assert sum(row[1] for row in data["sample_result"]) == data["export"]["exported"]
    assert (tmp_path / "demo" / "research" / "demo" / "tables" / "instances" / "_delta_log").is_dir()
