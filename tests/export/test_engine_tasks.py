"""What travels to workers, and how fast they may read the archive.

A batch task, pickled as Spark and the process pool pickle it, holds neither the project key
nor a zone secret (workers find their own); the archive caps are one budget for the whole run,
split between the tasks that actually run at once (the S3 server's own log shows the cap held
with several Spark tasks reading together); a failed Spark job becomes a one-line reason.
"""

from __future__ import annotations

import itertools
import json
import logging
import pickle
import threading
from pathlib import Path

import pytest
from export_testing import ROLES, prepare
from lakehouse_testing import Prepared, S3Server, set_sections, write_s3_config

from lakehouse import governance
from lakehouse.config import load_settings
from lakehouse.export import StageFailure, engines, export_runs, run_export
from lakehouse.export.context import RunContext, RunOptions
from lakehouse.export.keys import load_project_key
from lakehouse.export.lease import acquire
from lakehouse.governance import ManifestEntry
from lakehouse.storage import open_zone
from lakehouse.synth import generate_archive

SECRET = "s3cret-for-this-test-only-7f3a9c"
KEY_ID = "AKIA-TEST-ONLY-0042"


def _tasks_of_last_run(prepared: Prepared, engine: str) -> tuple[list[engines.BatchTask], bytes]:
    """The tasks the driver builds for every batch of the request's last run, and the key."""
    settings = prepared.settings
    state = export_runs(settings, prepared.request_id)[-1]
    restricted = open_zone(settings, "restricted")
    stored = json.loads(restricted.get(state.layout.plan))["batches"]
    batches = {i: [ManifestEntry(**entry) for entry in batch] for i, batch in enumerate(stored)}
    request = governance.get_request(settings, prepared.request_id)
    with acquire(restricted, state.project, user="olga", purpose="test", term=30) as lease:
        ctx = RunContext.open(settings, request, state, RunOptions(engine=engine, workers=2), "olga", lease)
        return engines.batch_tasks(ctx, batches, running=2), ctx.deid.key


def test_a_pickled_task_carries_no_key_and_no_secret(prepared: Prepared) -> None:
    from pyspark import cloudpickle

    set_sections(prepared.config, s3={"access_key_id": KEY_ID, "secret_access_key": SECRET})
    settings = prepared.settings
    assert settings.research.secret_access_key == SECRET  # the driver holds it (zones inherit [s3])
    # The local pool runs without them in its tasks and produces the run.
    assert run_export(settings, prepared.request_id, user="olga", workers=2).state.status == "succeeded"

    tasks, key = _tasks_of_last_run(prepared, "spark")
    assert key == load_project_key(settings, "lung-ai") and len(tasks) >= 3
    for task in tasks:
        for blob in (cloudpickle.dumps(task), pickle.dumps(task)):
            assert task.entries[0].key.encode() in blob  # the task is really in there
            for secret in (key, key.hex().encode(), key.hex().upper().encode(), SECRET.encode(), KEY_ID.encode()):
                assert secret not in blob
        assert KEY_ID not in repr(task) and SECRET not in repr(task)


def test_a_worker_with_another_key_fails_its_batch(prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.export.plan import new_plan
    from lakehouse.export.worker import run_batch

    settings = prepared.settings
    permission = governance.may_run(settings, prepared.request_id)
    assert permission.request is not None
    new_plan(settings, open_zone(settings, "restricted"), permission.request, permission.manifest, user="olga",
             engine="local", workers=2, opted_out=set())
    tasks, _ = _tasks_of_last_run(prepared, "local")
    other = "ab" * 32
    monkeypatch.setenv("LAKEHOUSE_DEID_KEY_LUNG_AI", other)  # this worker's environment only
    failure = run_batch(tasks[0], {})
    assert isinstance(failure, StageFailure)
    assert failure.stage == "deidentify" and failure.batch == "b-00000"
    assert "is not the driver's" in failure.reason and other not in failure.reason


class _TimedLog(logging.Handler):
    """Time and path of every request the S3 server answered (its werkzeug log lines)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.entries: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        parts = record.getMessage().split('"')
        if len(parts) > 1 and " " in parts[1]:
            with self._lock:
                self.entries.append((record.created, parts[1].split(" ")[1]))


@pytest.mark.s3
@pytest.mark.spark
def test_the_archive_cap_holds_with_concurrent_spark_tasks(s3_server: S3Server, tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    cap = 3.0  # well under what two tasks read unthrottled
    bucket = s3_server.new_bucket("arch")
    client = s3_server.client()
    for key, data in generate_archive(patients=1, seed=7):
        client.put_object(Bucket=bucket, Key=f"archive/{key}", Body=data)
    config = write_s3_config(tmp_path / "lh", s3_server, {"archive": bucket})
    # One local worker configured: the split must follow the Spark tasks running, not this.
    set_sections(config, roles=ROLES, export={"batch_size": 3, "workers": 1})
    request_id = prepare(config, patients=1)
    set_sections(config, throttle={"requests_per_second": cap, "adaptive": False})
    settings = load_settings(config, env={})

    timed = _TimedLog()
    logging.getLogger("werkzeug").addHandler(timed)
    try:
        state = run_export(settings, request_id, user="olga", engine="spark", spark=spark).state
    finally:
        logging.getLogger("werkzeug").removeHandler(timed)
    assert state.status == "succeeded" and state.batches >= 3

    reads = sorted(t for t, path in timed.entries if path.startswith(f"/{bucket}/"))
    assert len(reads) >= 2 * state.planned_objects  # a HEAD and a GET per object
    window = reads[-1] - reads[0]
    running = int(spark.sparkContext.defaultParallelism)
    assert running >= 2
    # Each running task holds cap/running requests per second plus a one-second burst of its share.
    assert len(reads) <= cap * window + cap + 1, (len(reads), window, state.planned_objects)
    # And tasks did read at once: the reads of two batches overlap in time.
    spans = []
    for batch in json.loads(open_zone(settings, "restricted").get(state.layout.plan))["batches"]:
        paths = {f"/{bucket}/archive/{entry['key']}" for entry in batch}
        times = [t for t, path in timed.entries if path in paths]
        spans.append((min(times), max(times)))
    spans.sort()
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_a_failed_spark_job_is_one_line_without_its_message() -> None:
    text = (
        "An error occurred while calling o84.collectAndServe.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in main\n'
        "OSError: [Errno 28] No space left on device: '/data/PATIENT^NAME/1.2.3.dcm'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(PythonRunner.scala:1)\n"
    )
    assert engines.spark_failure_reason(RuntimeError(text)) == "Spark task failed: OSError"
    missing = "ModuleNotFoundError: No module named 'lakehouse'\n"
    assert engines.spark_failure_reason(RuntimeError(missing)).startswith(
        "executors cannot import lakehouse (ModuleNotFoundError): ship lakehouse to them"
    )
    assert "\n" not in engines.spark_failure_reason(RuntimeError(text))
    lost = "An error occurred while calling o84.collectAndServe.\n: org.apache.spark.SparkException: Job aborted\n"
    assert engines.spark_failure_reason(RuntimeError(lost)) == "Spark task failed: SparkException"


def test_throttle_share_follows_the_running_tasks(prepared: Prepared) -> None:
    settings = prepared.settings
    local = engines.LocalEngine(workers=4, credentials={})
    assert [local.slots(n) for n in (1, 3, 9)] == [1, 3, 4]
    shared = engines.share_throttle(settings, local.slots(3))
    assert shared.throttle.requests_per_second == pytest.approx(settings.throttle.requests_per_second / 3)
    assert shared.throttle.bytes_per_second == pytest.approx(settings.throttle.bytes_per_second / 3)
