"""Shared fixtures: a real S3 endpoint (moto server over HTTP) with its request
log, local and S3 lakehouse roots, and one Spark session per test run."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lakehouse_testing import RequestLog, S3Server, write_s3_config  # noqa: F401  (re-exported)

os.environ.setdefault("LAKEHOUSE_NO_PROGRESS", "1")
# Credentials for the local moto endpoint only; never real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    log = RequestLog()
    werkzeug_logger = logging.getLogger("werkzeug")
    werkzeug_logger.setLevel(logging.INFO)
    werkzeug_logger.addHandler(log)
    werkzeug_logger.propagate = False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint_url=f"http://{host}:{port}", log=log)
    finally:
        server.stop()
        werkzeug_logger.removeHandler(log)


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    """A fresh lakehouse root made by ``init`` (config + four zone folders), in the ``asserted``
    identity mode: these tests act as several typed users (identity has its own tests)."""
    from lakehouse.config import init_root

    config = init_root(tmp_path / "lh")
    text = config.read_text()
    assert text.count('\nmode = "os"\n') == 1
    config.write_text(text.replace('\nmode = "os"\n', '\nmode = "asserted"\n'))
    return config.parent


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local Spark session for the whole test run (started only if a test asks)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("lakehouse-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
