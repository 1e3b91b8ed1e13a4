"""Where batches run: a local process pool (default, no JVM) or Spark tasks.

Both call ``worker.process_batch`` on the same ``BatchTask`` values, so both
produce the same objects and rows; only the driver commits. Each batch's result
(its summary, or the stage where it failed) goes to ``on_done`` as it lands.

An engine runs at most ``slots`` batches at once, and the archive throttle is split between
exactly that many: the run's total request and byte rates stay under the configured caps
whatever the pool or cluster size.

On Spark every batch is one job of one task, submitted from one of ``slots`` driver threads
in the run's job group: all slots of the cluster work at once, each result comes back as its
task ends, and stopping the run cancels the group. A job that fails (an executor without
lakehouse, a lost executor) becomes the batch's ``StageFailure`` at stage ``execute``.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Protocol

from lakehouse.config import EXPORT_ENGINES, Settings
from lakehouse.errors import ConfigError
from lakehouse.export.context import RunContext
from lakehouse.export.errors import StageFailure, reason_of
from lakehouse.export.keys import Credentials, key_check, without_credentials
from lakehouse.export.worker import BatchResult, BatchTask, accept_credentials, process_batch, run_batch
from lakehouse.governance import ManifestEntry
from lakehouse.processes import workers_allowed

LOG = logging.getLogger(__name__)
ENGINES = EXPORT_ENGINES
PRELOAD = ["lakehouse.export.worker", "pydicom", "pyarrow.parquet"]

OnDone = Callable[[BatchResult], None]


class Engine(Protocol):
    def slots(self, batches: int) -> int:
        """How many of ``batches`` run at once."""

    def run(self, tasks: Sequence[BatchTask], on_done: OnDone, running: int) -> None:
        """Run every task, ``running`` at once (the number their throttle share was made for);
        ``on_done`` gets each result as it lands (it may raise to stop the run)."""


def batch_tasks(ctx: RunContext, batches: Mapping[int, Sequence[ManifestEntry]], running: int) -> list[BatchTask]:
    """The tasks of ``batches`` (index → entries), ``running`` of which run at once: the archive
    throttle split between them, and neither the project key nor a zone credential inside."""
    settings = share_throttle(without_credentials(ctx.settings), running)
    check = key_check(ctx.deid.key)
    return [
        BatchTask(
            settings=settings,
            layout=ctx.layout,
            batch=index,
            entries=tuple(entries),
            deid_options=ctx.deid.options,
            key_check=check,
            provenance=ctx.provenance,
            generalizations=ctx.deid.generalizations,
        )
        for index, entries in batches.items()
    ]


def share_throttle(settings: Settings, running: int) -> Settings:
    """Settings whose archive caps are split between ``running`` concurrent batches, so the
    whole run stays inside the configured requests/s and bytes/s."""
    caps = settings.throttle
    share = max(1, running)
    throttle = replace(
        caps, requests_per_second=caps.requests_per_second / share, bytes_per_second=caps.bytes_per_second / share
    )
    return replace(settings, throttle=throttle)


@dataclass(frozen=True, repr=False)
class LocalEngine:
    """A pool of ``workers`` processes on this machine, holding the driver's zone credentials."""

    workers: int
    credentials: Credentials

    def slots(self, batches: int) -> int:
        slots = max(1, min(self.workers, batches))
        if slots > 1 and not workers_allowed():
            LOG.warning(
                "export batches run in this process, one at a time: worker processes would run the "
                "calling script again (it has no `if __name__ == \"__main__\":` guard)"
            )
            return 1
        return slots

    def run(self, tasks: Sequence[BatchTask], on_done: OnDone, running: int) -> None:
        if running == 1:
            for task in tasks:
                on_done(run_batch(task, self.credentials))
            return
        # forkserver: workers start clean (no inherited threads, boto3 clients or locks), forked
        # from a server that imported what they need once.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        with ProcessPoolExecutor(
            max_workers=running, mp_context=context,
            initializer=accept_credentials, initargs=(dict(self.credentials),),
        ) as pool:
            futures = {pool.submit(process_batch, task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    try:
                        result = future.result()
                    except BrokenProcessPool as exc:  # a worker process died (e.g. out of memory)
                        result = StageFailure("execute", futures[future].name, reason_of(exc))
                    on_done(result)
            except BaseException:
                # The run stops (a failed batch, a revoked request, a lost lease): start no other
                # batch, and let running ones end before the caller cleans their staging.
                pool.shutdown(wait=True, cancel_futures=True)
                raise


@dataclass(frozen=True)
class SparkEngine:
    """Batches as Spark tasks; executors find their own credentials and project key."""

    spark: Any

    def slots(self, batches: int) -> int:
        """The cluster's task slots (``spark.default.parallelism``, by default its cores)."""
        return max(1, min(int(self.spark.sparkContext.defaultParallelism), batches))

    def run(self, tasks: Sequence[BatchTask], on_done: OnDone, running: int) -> None:
        if not tasks:
            return
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        context = self.spark.sparkContext
        group = f"lakehouse-export-{tasks[0].layout.run_id}"

        def one_job(task: BatchTask) -> BatchResult:
            context.setJobGroup(group, f"lakehouse export {task.name}", interruptOnCancel=True)
            try:
                results: list[BatchResult] = context.parallelize([task], 1).map(process_batch).collect()
            except (Py4JError, PySparkException) as exc:  # the job failed or was cancelled
                return StageFailure("execute", task.name, spark_failure_reason(exc))
            return results[0]

        with ThreadPoolExecutor(max_workers=running, thread_name_prefix="lakehouse-spark") as pool:
            futures: list[Future[BatchResult]] = [pool.submit(one_job, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    on_done(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                context.cancelJobGroup(group)  # the run stops: no further batch writes its staging
                raise


_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '(?P<module>[\w.]+)'")
_ERROR_TYPE = re.compile(r"^(?::\s)?(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))\b", re.MULTILINE)


def spark_failure_reason(exc: BaseException) -> str:
    """A one-line, PHI-free reason for a failed Spark job: a module executors lack, else only the
    type of the Python error the task raised (messages may quote object keys)."""
    text = str(exc)
    missing = _MISSING_MODULE.search(text)
    if missing:
        return (
            f"executors cannot import {missing['module']} (ModuleNotFoundError): ship lakehouse to them "
            "(spark-submit --py-files with the wheel as a .zip, or --archives with a packed venv; see the README)"
        )
    errors = [m["type"] for m in _ERROR_TYPE.finditer(text) if "py4j" not in m["type"].lower()]
    return f"Spark task failed: {errors[-1].rsplit('.', 1)[-1] if errors else type(exc).__name__}"


def open_engine(name: str, *, workers: int, credentials: Credentials, spark: Any = None) -> Engine:
    if name == "spark":
        return SparkEngine(spark or get_spark())
    return LocalEngine(workers, credentials)


def get_spark(app_name: str = "lakehouse-export", master: str | None = None) -> Any:
    """The active Spark session, else a new one: its master and settings come from
    ``spark-submit``, ``spark-defaults.conf`` and the environment (``MASTER``), unless
    ``master`` is given."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark: pip install 'lakehouse[spark]'") from None
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()
