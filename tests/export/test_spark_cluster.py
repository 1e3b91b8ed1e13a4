"""An export on a real Spark standalone cluster: a master and two workers of one core on
127.0.0.1, started and stopped by the test.

Executors run a Python with the project's dependencies but without lakehouse. Driven by
``lakehouse export run --engine spark`` (master and settings from ``spark-defaults.conf``), the
run ends ``failed`` with one line naming the stage, the batch and the cause; ``spark-submit
jobs/export_spark.py`` with the wheel shipped by ``--py-files`` (as the README shows) resumes
the same run and succeeds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from export_testing import PROJECT, read_table
from lakehouse_testing import Prepared
from spark_cluster import bare_python, build_wheel, spark_submit, standalone_cluster

from lakehouse.export import export_runs

pytestmark = [pytest.mark.spark, pytest.mark.slow]

MISSING = re.compile(
    r"lakehouse: export failed at stage execute, batch b-\d{5}: executors cannot import lakehouse "
    r"\(ModuleNotFoundError\): ship lakehouse to them \(spark-submit --py-files .*\)"
)


def test_executors_without_lakehouse_fail_the_run_and_the_wheel_resumes_it(
    prepared: Prepared, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path / "dist")
    shipped = shutil.copy(wheel, tmp_path / "lakehouse.zip")  # Spark puts .zip (not .whl) files on the path
    python = bare_python(tmp_path)
    job = ["--config", str(prepared.config), "--user", "olga", prepared.request_id]
    with standalone_cluster(tmp_path / "cluster", workers=2, python=python) as cluster:
        conf = tmp_path / "spark-conf"
        conf.mkdir()
        (conf / "spark-defaults.conf").write_text(
            f"spark.master {cluster.master_url}\nspark.ui.enabled false\nspark.driver.host 127.0.0.1\n"
            "spark.task.maxFailures 1\n"
        )
        failed = subprocess.run(
            [sys.executable, "-m", "lakehouse", "export", "run", prepared.request_id, "--engine", "spark",
             "--user", "olga", "--config", str(prepared.config)],
            capture_output=True, text=True, check=False, timeout=600,
            env={**os.environ, "SPARK_CONF_DIR": str(conf), "SPARK_LOCAL_IP": "127.0.0.1",
                 "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": sys.executable},
        )
        runs = export_runs(prepared.settings, prepared.request_id)
        assert runs, failed.stdout[-3000:] + failed.stderr[-3000:]
        run = runs[-1]
        done = spark_submit(cluster, job, py_files=[Path(shipped)], python=python)

    assert failed.returncode == 1
    reasons = [line for line in failed.stderr.splitlines() if line.startswith("lakehouse: export")]
    assert len(reasons) == 1 and MISSING.fullmatch(reasons[0]), reasons
    assert run.status == "failed" and run.error is not None and run.error.stage == "execute"

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["status"] == "succeeded" and result["resumed"] and result["run_id"] == run.run_id
    assert result["engine"] == "spark" and result["exported"] > 0
    assert result["exported"] + result["quarantined_total"] == result["planned_objects"]
    assert read_table(prepared.root, PROJECT, "instances").height == result["exported"]
