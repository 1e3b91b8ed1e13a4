"""`lakehouse deid` through typer's CliRunner: outcome lines, summary, names, key sources."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from test_engine import make_ct, to_bytes
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.config import init_root, load_settings
from lakehouse.deid import pseudonymize_uid
from lakehouse.export.keys import load_project_key

runner = CliRunner()
KEY_HEX = "ab" * 32


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "Zyxwvut_Qwertina"
    src.mkdir()
    (src / "Zyxwvut.dcm").write_bytes(to_bytes(make_ct()))
    (src / "junk.dcm").write_bytes(b"not dicom")
    return src


def test_deid_folder_with_key_env_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deid", str(_inputs(tmp_path)), "--out", str(tmp_path / "out"), "--project", "p1",
                                 "--option", "retain-modified-dates", "--json"],
                           env={"LAKEHOUSE_DEID_KEY": KEY_HEX})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["summary"] == {"deidentified": 1, "quarantined": 1, "quarantined:unparseable": 1}
    expected = pseudonymize_uid("1.2.826.0.1.3680043.8.498.1001", bytes.fromhex(KEY_HEX)) + ".dcm"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [expected]
    assert "Zyxwvut" not in result.output


def test_deid_text_lines_and_refusals(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    key_file = tmp_path / "k.hex"
    key_file.write_text(KEY_HEX)
    ok = runner.invoke(app, ["deid", str(src), "--out", str(tmp_path / "o"), "--project", "p", "--key-file",
                             str(key_file)], env={"LAKEHOUSE_DEID_KEY": ""})
    assert ok.exit_code == 0 and "quarantined: unparseable" in ok.output and "summary:" in ok.output
    no_key = runner.invoke(app, ["deid", str(src), "--out", str(tmp_path / "o"), "--project", "p"],
                           env={"LAKEHOUSE_DEID_KEY": ""})
    assert no_key.exit_code != 0 and "LAKEHOUSE_DEID_KEY" in str(no_key.exception)
    bad = runner.invoke(app, ["deid", str(src), "--out", str(tmp_path / "o"), "--project", "p", "--option",
                              "retain-everything"], env={"LAKEHOUSE_DEID_KEY": KEY_HEX})
    assert bad.exit_code != 0 and "retain-everything" in str(bad.exception)


def test_config_key_is_created_once_in_the_restricted_zone_with_0600(tmp_path: Path) -> None:
    config = init_root(tmp_path / "lh")
    result = runner.invoke(app, ["deid", str(_inputs(tmp_path)), "--out", str(tmp_path / "o"), "--project", "p9",
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    key_path = tmp_path / "lh" / "restricted" / "keys" / "p9.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    settings = load_settings(config)
    assert load_project_key(settings, "p9") == bytes.fromhex(key_path.read_text())
    assert not [p for zone in ("research", "datasets") for p in (tmp_path / "lh" / zone).rglob("*.key")]


def test_a_real_run_prints_its_json_summary_when_objects_fail(tmp_path: Path) -> None:
    """A separate process: duplicates, a truncated copy and junk are quarantined, nothing is
    overwritten, the run goes on and prints its summary (exit 0)."""
    src = _inputs(tmp_path)
    data = to_bytes(make_ct())
    (src / "copy.dcm").write_bytes(to_bytes(make_ct(SeriesDescription="another series")))  # same SOP UID
    (src / "cut.dcm").write_bytes(data[:-1000])
    lakehouse = Path(sys.executable).with_name("lakehouse")
    done = subprocess.run([str(lakehouse), "deid", str(src), "--out", str(tmp_path / "out"), "--project", "p1",
                           "--json"], env={"LAKEHOUSE_DEID_KEY": KEY_HEX, "PATH": ""}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)["summary"]
    assert summary == {"deidentified": 1, "quarantined": 3, "quarantined:duplicate_output": 1,
                       "quarantined:truncated": 1, "quarantined:unparseable": 1}
    assert len(list((tmp_path / "out").iterdir())) == 1
    assert "Zyxwvut" not in done.stdout + done.stderr
