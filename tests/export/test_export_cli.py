"""The export surface as a user meets it: `lakehouse export|optout purge|request revoke --purge|demo`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from export_testing import PROJECT, Prepared, objects, read_table


def lakehouse(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_FAULT")}
    return subprocess.run([sys.executable, "-m", "lakehouse", *args], capture_output=True, text=True, check=False,
                          env=env, cwd=cwd, timeout=600)


def test_export_run_status_and_refusals(prepared: Prepared) -> None:
    config = ["--config", str(prepared.config)]
    refused = lakehouse("export", "run", prepared.request_id, "--user", "alice", *config)
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("lakehouse: ")

    done = lakehouse("export", "run", prepared.request_id, "--user", "olga", "--json", *config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["exported"] > 0
    assert set(result["table_versions"]) == {"studies", "series", "instances", "attributes", "lineage", "quarantine"}

    status = lakehouse("export", "status", result["run_id"], "--json", *config)
    assert status.returncode == 0 and json.loads(status.stdout)["exported"] == result["exported"]
    text = lakehouse("export", "status", result["run_id"], *config)
    assert "succeeded" in text.stdout
    missing = lakehouse("export", "status", "run-nope", *config)
    assert missing.returncode != 0 and "no export run" in missing.stderr


def test_optout_purge_and_revoke_purge(prepared: Prepared) -> None:
    config = ["--config", str(prepared.config)]
    assert lakehouse("export", "run", prepared.request_id, "--user", "olga", *config).returncode == 0
    from lakehouse.export.commit import restricted_location

    patient = restricted_location(prepared.settings, "lineage").read().column("source_patient_id")[0].as_py()
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
