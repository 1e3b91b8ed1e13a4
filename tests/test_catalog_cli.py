"""`lakehouse synth archive` and `lakehouse catalog sync|stats` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lakehouse.cli import app

runner = CliRunner()


def test_synth_sync_stats_round_trip(local_root: Path) -> None:
    config = str(local_root / "lakehouse.toml")
    archive = local_root / "archive"
    made = runner.invoke(app, ["synth", "archive", str(archive), "--patients", "3", "--seed", "2", "--json"])
    assert made.exit_code == 0, made.output
    written = json.loads(made.stdout)
    assert written["objects"] == 24 and written["layout"] == "hierarchical"
    (archive / "junk.bin").write_bytes(b"not dicom at all")

    synced = runner.invoke(app, ["catalog", "sync", "--config", config, "--json"])
    assert synced.exit_code == 0, synced.output  # a failed object does not fail the sync
    summary = json.loads(synced.stdout)
    assert (summary["read"], summary["failed"], summary["failure_reasons"]) == (25, 1, {"not_dicom": 1})

    text = runner.invoke(app, ["catalog", "sync", "--config", config, "--user", "olga"])
    assert text.exit_code == 0 and "25 unchanged" in text.output

    from lakehouse import lake
    from lakehouse.config import load_settings
    from lakehouse.governance import verify_audit

    audit = sorted(lake.table(load_settings(config, env={}), "audit").read().to_pylist(), key=lambda e: e["seq"])
    assert [(e["action"], e["user"]) for e in audit][-1] == ("catalog.sync", "olga")
    assert len([e for e in audit if e["action"] == "catalog.sync"]) == 2
    assert verify_audit(load_settings(config, env={})).ok

    stats = runner.invoke(app, ["catalog", "stats", "--config", config, "--json"])
    data = json.loads(stats.output)
    assert (data["patients"], data["studies"], data["objects"]) == (3, 6, 25)
    assert data["per_parse_status"] == {"ok": 24, "error": 1}
    human = runner.invoke(app, ["catalog", "stats", "--config", config])
    assert "per modality: (none) 1, CR 1, CT 12, KO 3" in human.output


def test_sync_text_output_reports_failures_by_code(local_root: Path) -> None:
    (local_root / "archive" / "empty.dcm").write_bytes(b"")
    result = runner.invoke(app, ["catalog", "sync", "--config", str(local_root / "lakehouse.toml")])
    assert result.exit_code == 0
    assert "1 objects could not be cataloged (empty_object 1)" in result.output


def test_opaque_layout_from_the_command_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "archive", str(tmp_path), "--patients", "1", "--layout", "opaque"])
    assert result.exit_code == 0
    assert not list(tmp_path.rglob("*.dcm")) and len([p for p in tmp_path.rglob("*") if p.is_file()]) == 9
