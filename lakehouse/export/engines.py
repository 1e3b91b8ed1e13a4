"""Where batches run: a local process pool (default, no JVM) or Spark tasks.

Both call ``worker.process_batch`` on the same ``BatchTask`` values, so both
produce the same objects and rows; only the driver commits.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.export.worker import BatchTask, process_batch

ENGINES = ("local", "spark")
PRELOAD = ["lakehouse.export.worker", "pydicom", "pyarrow.parquet"]


def share_throttle(settings: Settings, workers: int) -> Settings:
    """Settings whose archive caps are split between ``workers`` processes,
    so the whole run stays inside the configured requests/s and bytes/s."""
    throttle = dict(settings.section("throttle"))
    for key in ("requests_per_second", "bytes_per_second"):
        if throttle.get(key):
            throttle[key] = float(throttle[key]) / max(1, workers)
    return replace(settings, sections={**settings.sections, "throttle": throttle})


def run_local(
    tasks: Sequence[BatchTask], workers: int, on_done: Callable[[dict[str, Any]], None]
) -> None:
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(process_batch(task))
        return
    # forkserver: workers start clean (no inherited threads, boto3 clients or locks), forked
    # from a server that imported what they need once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(process_batch, task) for task in tasks]
        for future in as_completed(futures):
            on_done(future.result())


def run_spark(
    tasks: Sequence[BatchTask], spark: Any, on_done: Callable[[dict[str, Any]], None]
) -> None:
    """One Spark task per batch; workers read, de-identify and stage; results come back small."""
    if not tasks:
        return
    rdd = spark.sparkContext.parallelize(list(tasks), numSlices=len(tasks))
    for summary in rdd.map(process_batch).toLocalIterator():
        on_done(summary)


def get_spark(app_name: str = "lakehouse-export") -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark: pip install 'lakehouse[spark]'") from None
    return SparkSession.builder.appName(app_name).getOrCreate()
