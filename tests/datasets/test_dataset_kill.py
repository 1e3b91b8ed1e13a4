"""A build killed (SIGKILL) while it writes files: nothing is published, pull refuses it, and the
next build or purge clears what it left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets_testing import PROJECT
from lakehouse_testing import Prepared

from lakehouse import datasets
from lakehouse.errors import Refused

pytestmark = pytest.mark.slow


def kill_mid_build(lh: Prepared, name: str) -> Path:
    folder = lh.root / "datasets" / PROJECT / name / "v1"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}, "LAKEHOUSE_NO_PROGRESS": "1"}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("lakehouse")), "dataset", "build", name, "--project", PROJECT,
         "--where", "TRUE", "--format", "dicom,png", "--user", "cora", "--config", str(lh.config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(folder.rglob("*.png")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert any(folder.rglob("*.dcm")), "the build was not caught while writing"
    assert not (folder / "version.json").exists()
    return folder


def test_a_killed_build_is_never_published_and_is_cleared(lh: Prepared, tmp_path: Path) -> None:
    folder = kill_mid_build(lh, "killed")
    left = datasets.get_version(lh.settings, PROJECT, "killed", 1)
    assert left.status == "reserved"
    with pytest.raises(Refused, match="is reserved"):
        datasets.pull(lh.settings, PROJECT, "killed", 1, str(tmp_path / "out"), user="leo")
    rebuilt = datasets.build_dataset(lh.settings, datasets.BuildOptions(
        project=PROJECT, name="killed", selection=datasets.Selection("sql", "TRUE")), user="cora")
    assert rebuilt.version.version == 2
    cleared = datasets.get_version(lh.settings, PROJECT, "killed", 1)
    assert cleared.status == "failed" and "process gone" in (cleared.reason or "")
    assert not [p for p in folder.rglob("*") if p.is_file()]


def test_a_purge_clears_a_killed_build(lh: Prepared) -> None:
    from lakehouse import lake
    from lakehouse.workflows import purge_opted_out_patient

    folder = kill_mid_build(lh, "killed")
    patient = lake.table(lh.settings, "catalog").read(columns=["patient_id"]).column("patient_id")[0].as_py()
    purge_opted_out_patient(lh.settings, patient, user="root")
    assert datasets.get_version(lh.settings, PROJECT, "killed", 1).status == "failed"
    assert not [p for p in folder.rglob("*") if p.is_file()]
