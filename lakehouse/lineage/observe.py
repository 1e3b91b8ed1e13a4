"""``@emits(kind)``: a job function that reports its runs as OpenLineage START, COMPLETE and FAIL.

The decorated function runs exactly as before; around it, with ``[lineage] transport`` other
than ``none``, a START event goes out before it, COMPLETE after it returns, FAIL (then the
exception re-raised) when it raises. Describing a job reads lake metadata and may fail like any
read: then the event goes out with what is known and a warning is logged. Nothing here can make
the job fail or change its result. openlineage-python is imported only when a transport is set.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from lakehouse.config import Settings

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")

# The observed jobs (``lineage.jobs.JOBS`` describes each).
EXPORT = "export"
CATALOG_SYNC = "catalog_sync"
DATASET_BUILD = "dataset_build"


def emits(kind: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a job function whose first parameter is ``settings``."""

    def decorate(work: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(work)

        @functools.wraps(work)
        def observed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            bound = signature.bind(*args, **kwargs)
            settings: Settings = bound.arguments["settings"]
            if settings.lineage.transport == "none":
                return work(*args, **kwargs)
            try:
                from lakehouse.lineage.run import ObservedRun

                run = ObservedRun.open(kind, settings, bound.arguments)
            except Exception as exc:  # noqa: BLE001  (e.g. openlineage-python missing: lineage never fails a job)
                log.warning("lineage: no events for this %s run (%s)", kind, type(exc).__name__)
                return work(*args, **kwargs)
            run.start()
            try:
                result = work(*args, **kwargs)
            except BaseException as exc:
                run.fail(exc)
                raise
            run.complete(result)
            return result

        return observed

    return decorate
