"""Keeping pydicom from repeating values: its warnings *and* its log records.

pydicom reports an odd value both ways at once (``misc.warn_and_log``): a warning and a
WARNING record on the ``pydicom`` logger, for example ``Invalid value for VR UI: '<value>'``.
The value may be PHI, and the record propagates to whatever handlers the host process set up
(a scheduler's task log, a notebook). ``quiet_pydicom()`` silences both while lakehouse reads
or writes DICOM: warnings are ignored, and records the ``pydicom`` logger gets from this
thread are dropped; other threads' records pass (the filter is per thread).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_state = threading.local()


class _DropWhileQuiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_state, "depth", 0)


_FILTER = _DropWhileQuiet()
logging.getLogger("pydicom").addFilter(_FILTER)


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """No pydicom warning or log record from this thread inside the block (nesting is fine)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _state.depth -= 1
