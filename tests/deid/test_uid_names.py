"""Output names from UIDs: only of the UID grammar, whatever a source object holds.
`lakehouse deid --option retain-uids` runs in a real process on objects whose SOP Instance
UID is a traversal or an absolute path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_engine import make_ct, to_bytes

from lakehouse.dicom.uid import is_uid

KEY_HEX = "cd" * 32


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1.2.840.10008.1.2", True),
        ("2.25.329800735698586629295641978511506172918", True),
        ("1.2.840.01", True),  # a leading zero: off the standard, harmless in a name
        ("1" + ".2" * 31 + "3", True),  # 64 characters
        ("1" + ".2" * 32, False),  # 65
        ("../../x", False),
        ("/tmp/x", False),
        ("1.2/../3", False),
        ("1..2", False),
        (".1.2", False),
        ("1.2.", False),
        ("", False),
        ("1.2\n", False),
        ("1.2\x00", False),
        ("١.٢", False),  # digits of another script
        (None, False),
    ],
)
def test_uid_grammar(value: object, ok: bool) -> None:
    assert is_uid(value) is ok


def _source(path: Path, sop: str) -> None:
    ds = make_ct()
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    path.write_bytes(to_bytes(ds))


def test_retained_uids_that_are_paths_are_quarantined_as_bad_uid(tmp_path: Path) -> None:
    sources, out = tmp_path / "in", tmp_path / "a" / "b" / "out"
    sources.mkdir()
    escaped = tmp_path / "escaped"
    _source(sources / "1-traversal.dcm", "../../x")
    _source(sources / "2-absolute.dcm", str(escaped))
    _source(sources / "3-fine.dcm", "1.2.826.0.1.3680043.8.498.7")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")} | {"LAKEHOUSE_DEID_KEY": KEY_HEX}
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "deid", str(sources), "--out", str(out), "--project", "p",
         "--option", "retain-uids", "--json"],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "../../x" not in done.stderr and str(escaped) not in done.stderr  # pydicom quotes bad values
    doc = json.loads(done.stdout)
    assert [(o["outcome"], o["reason"], o["output"]) for o in doc["objects"]] == [
        ("quarantined", "bad_uid", None),
        ("quarantined", "bad_uid", None),
        ("deidentified", None, "1.2.826.0.1.3680043.8.498.7.dcm"),
    ]
    assert doc["summary"]["quarantined:bad_uid"] == 2
    assert [p.name for p in out.iterdir()] == ["1.2.826.0.1.3680043.8.498.7.dcm"]
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == {"in/1-traversal.dcm", "in/2-absolute.dcm", "in/3-fine.dcm",
                       "a/b/out/1.2.826.0.1.3680043.8.498.7.dcm"}
    assert not escaped.exists() and not (tmp_path / "a" / "x.dcm").exists()
