"""pydicom reports odd values as a warning *and* a log record quoting the value; neither may
leave lakehouse while it reads source DICOM (a host's root handler would write PHI to its log)."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from lakehouse.catalog import sync_catalog
from lakehouse.config import load_settings
from lakehouse.deid.engine import DeidSettings, deidentify
from lakehouse.dicom.quiet import quiet_pydicom
from lakehouse.flatten import Provenance, flatten

SECRET = "1.2.840.10008.5.1.4.1.1.2.SECRETé"  # an invalid UID: pydicom quotes it when it reads it


def _odd_object() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.SOPClassUID = SECRET
        buffer = io.BytesIO()
        ds.save_as(buffer)
    return buffer.getvalue()


def _quoted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "SECRET" in r.getMessage()]


def test_pydicom_logs_the_value_outside_lakehouse(caplog: pytest.LogCaptureFixture) -> None:
    """The control: read plainly, pydicom's record (and warning) quotes the value."""
    odd = _odd_object()
    caplog.set_level(logging.WARNING)
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        str(pydicom.dcmread(io.BytesIO(odd)).SOPClassUID)
    assert _quoted(caplog)


def test_deidentify_and_flatten_log_no_value(caplog: pytest.LogCaptureFixture) -> None:
    odd = _odd_object()
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # making the object logged the value: what follows must not
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = deidentify(odd, DeidSettings(project="p", key=b"k" * 32))
        assert result.dataset is not None and result.data is not None
        flatten(result.dataset, Provenance("r", "q", "p", "profile", ()), object_key="k", object_sha256="0" * 64,
                object_size=len(result.data))
        flatten(pydicom.dcmread(io.BytesIO(odd)), Provenance("r", "q", "p", "profile", ()),
                object_key="k", object_sha256="0" * 64, object_size=1)
    assert _quoted(caplog) == []
    assert [str(w.message) for w in caught if "SECRET" in str(w.message)] == []


def test_catalog_sync_logs_no_value(local_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A guard: the header walk reads this object without pydicom's conversion today."""
    (local_root / "archive" / "odd.dcm").write_bytes(_odd_object())
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    result = sync_catalog(load_settings(local_root / "lakehouse.toml", env={}))
    assert result.added == 1
    assert _quoted(caplog) == []


def test_quiet_is_per_thread_and_nests(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    caplog.set_level(logging.WARNING)
    log = logging.getLogger("pydicom")
    with quiet_pydicom():
        with quiet_pydicom():
            log.warning("SECRET inner")
        log.warning("SECRET outer")
        other = threading.Thread(target=log.warning, args=("SECRET from another thread",))
        other.start()
        other.join()
    log.warning("SECRET after")
    assert _quoted(caplog) == ["SECRET from another thread", "SECRET after"]
