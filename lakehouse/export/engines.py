"""Where batches run: a local process pool (default, no JVM) or Spark tasks.

Both call ``worker.process_batch`` on the same ``BatchTask`` values, so both
produce the same objects and rows; only the driver commits. Each batch's result
(its summary, or the stage where it failed) goes to ``on_done`` as it lands.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from lakehouse.config import EXPORT_ENGINES, Settings
from lakehouse.errors import ConfigError
from lakehouse.export.errors import StageFailure, reason_of
from lakehouse.export.worker import BatchResult, BatchTask, process_batch

ENGINES = EXPORT_ENGINES
PRELOAD = ["lakehouse.export.worker", "pydicom", "pyarrow.parquet"]


def share_throttle(settings: Settings, workers: int) -> Settings:
    """Settings whose archive caps are split between ``workers`` processes,
    so the whole run stays inside the configured requests/s and bytes/s."""
    caps = settings.throttle
    share = max(1, workers)
    throttle = replace(
        caps, requests_per_second=caps.requests_per_second / share, bytes_per_second=caps.bytes_per_second / share
    )
    return replace(settings, throttle=throttle)


def run_local(tasks: Sequence[BatchTask], workers: int, on_done: Callable[[BatchResult], None]) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(process_batch(task))
        return
    # forkserver: workers start clean (no inherited threads, boto3 clients or locks), forked
    # from a server that imported what they need once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
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


def run_spark(tasks: Sequence[BatchTask], spark: Any, on_done: Callable[[BatchResult], None]) -> None:
    """One Spark task per batch; workers read, de-identify and stage; results come back small."""
    if not tasks:
        return
    context = spark.sparkContext
    group = f"lakehouse-export-{tasks[0].layout.run_id}"
    context.setJobGroup(group, "lakehouse export", interruptOnCancel=True)
    rdd = context.parallelize(list(tasks), numSlices=len(tasks))
    try:
        for result in rdd.map(process_batch).toLocalIterator():
            on_done(result)
    except BaseException:
        context.cancelJobGroup(group)  # the run stops: no further batch writes its staging
        raise


def get_spark(app_name: str = "lakehouse-export") -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark: pip install 'lakehouse[spark]'") from None
    return SparkSession.builder.appName(app_name).getOrCreate()
