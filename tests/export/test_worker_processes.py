"""A script that calls lakehouse without an ``if __name__ == "__main__":`` guard runs once: the
catalog's second reader and the export's worker pool would re-run it in every worker, so the
work stays in the calling process (lakehouse.processes). A guarded script gets its workers
(which import it, as multiprocessing does, but do not run what its guard protects)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lakehouse_testing import Prepared

from lakehouse.processes import _guarded
from lakehouse.synth import synthesize_archive

SYNC = """
import json, sys
from pathlib import Path
with open(sys.argv[2], "a") as marker:  # top-level code: runs in every process that runs the script
    marker.write("top\\n")
from lakehouse.catalog import headers, sync_catalog
from lakehouse.config import load_settings
headers.WORKER_MIN_OBJECTS, headers.CHUNK = 1, 1  # the second reader joins in at any size
settings = load_settings(Path(sys.argv[1]), env={"LAKEHOUSE_THROTTLE_REQUESTS_PER_SECOND": "0",
                                                 "LAKEHOUSE_THROTTLE_BYTES_PER_SECOND": "0"})
def run():
    with open(sys.argv[2], "a") as marker:
        marker.write("run\\n")
    result = sync_catalog(settings)
    print(json.dumps({"worker": headers.local_archive(settings) is not None, "added": result.added,
                      "failed": result.failed}))
"""
EXPORT = """
import json, sys
from pathlib import Path
with open(sys.argv[2], "a") as marker:
    marker.write("top\\n")
from lakehouse.config import load_settings
from lakehouse.export import run_export
def run():
    with open(sys.argv[2], "a") as marker:
        marker.write("run\\n")
    outcome = run_export(load_settings(Path(sys.argv[1]), env={}), sys.argv[3], user="olga", workers=2)
    print(json.dumps({"status": outcome.state.status, "batches": outcome.state.batches}))
"""
CALL = {"unguarded": "run()\n", "guarded": 'if __name__ == "__main__":\n    run()\n'}


def _script(tmp_path: Path, body: str, guard: str, *args: str) -> tuple[dict, list[str], str]:
    script = tmp_path / f"{guard}.py"
    script.write_text(body + CALL[guard])
    marker = tmp_path / f"{guard}.marker"
    run = subprocess.run(
        [sys.executable, str(script), args[0], str(marker), *args[1:]],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "LAKEHOUSE_NO_PROGRESS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), marker.read_text().splitlines(), run.stderr


@pytest.mark.parametrize("guard", ["unguarded", "guarded"])
def test_a_catalog_sync_script_runs_once(local_root: Path, tmp_path: Path, guard: str) -> None:
    synthesize_archive(local_root / "archive", patients=1, seed=4)
    result, marker, stderr = _script(tmp_path, SYNC, guard, str(local_root / "lakehouse.toml"))
    assert marker.count("run") == 1
    assert marker.count("top") == (1 if guard == "unguarded" else 2)  # a worker imports a guarded script
    assert "Traceback" not in stderr
    assert result["added"] > 0 and result["failed"] == 0
    assert result["worker"] is (guard == "guarded" and (os.cpu_count() or 1) >= 2)


@pytest.mark.parametrize("guard", ["unguarded", "guarded"])
def test_an_export_script_runs_once(prepared: Prepared, tmp_path: Path, guard: str) -> None:
    result, marker, stderr = _script(tmp_path, EXPORT, guard, str(prepared.config), prepared.request_id)
    assert marker.count("run") == 1
    assert marker.count("top") == (1 if guard == "unguarded" else 3)  # the forkserver's two workers
    assert result["status"] == "succeeded" and result["batches"] >= 2
    assert ("worker processes would run the calling script again" in stderr) is (guard == "unguarded")


@pytest.mark.parametrize(
    ("source", "guarded"),
    [
        ('if __name__ == "__main__":\n    main()\n', True),
        ("if '__main__' == __name__:\n    main()\n", True),
        ("main()\n", False),
        ('def f():\n    if __name__ == "__main__":\n        main()\n', False),  # not at the top level
        ('if __name__ != "__main__":\n    main()\n', False),
        ("this is not python (\n", False),
    ],
)
def test_the_guard_is_read_from_the_script(tmp_path: Path, source: str, guarded: bool) -> None:
    script = tmp_path / "script.py"
    script.write_text(source)
    assert _guarded(str(script)) is guarded
