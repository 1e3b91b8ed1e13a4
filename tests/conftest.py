"""Shared fixtures: a real S3 endpoint (moto server over HTTP) with its request
log, local and S3 lakehouse roots, and one Spark session per test run."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("LAKEHOUSE_NO_PROGRESS", "1")
# Credentials for the local moto endpoint only; never real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


class RequestLog(logging.Handler):
    """Every request the S3 server answered: (method, path, status), from its own log."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.entries: list[tuple[str, str, int]] = []
        self._lock_entries = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        match = _REQUEST_LINE.search(record.getMessage())
        if match:
            with self._lock_entries:
                self.entries.append((match["method"], match["path"], int(match["status"])))

    def clear(self) -> None:
        with self._lock_entries:
            self.entries.clear()

    def for_bucket(self, bucket: str) -> list[tuple[str, str, int]]:
        """Requests whose path-style URL addresses ``bucket``."""
        with self._lock_entries:
            return [e for e in self.entries if e[1] == f"/{bucket}" or e[1].startswith((f"/{bucket}/", f"/{bucket}?"))]

    def methods_for_bucket(self, bucket: str) -> set[str]:
        return {m for m, _, _ in self.for_bucket(bucket)}


@dataclass
class S3Server:
    endpoint_url: str
    log: RequestLog

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def new_bucket(self, prefix: str = "b") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


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
    """A fresh lakehouse root made by ``init`` (config + four zone folders)."""
    from lakehouse.config import init_root

    return init_root(tmp_path / "lh").parent


def write_s3_config(root: Path, server: S3Server, buckets: dict[str, str], extra: str = "") -> Path:
    """A lakehouse.toml whose zones are the given buckets (zone name → bucket) on the moto server;
    zones not given stay local folders under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for zone in ("archive", "restricted", "research", "datasets"):
        uri = f"s3://{buckets[zone]}/{zone}" if zone in buckets else zone
        lines += [f"[{zone}]", f'uri = "{uri}"', ""]
    lines += ["[s3]", f'endpoint_url = "{server.endpoint_url}"', 'region = "us-east-1"',
              'access_key_id = "testing"', 'secret_access_key = "testing"', ""]
    path = root / "lakehouse.toml"
    path.write_text("\n".join(lines) + extra)
    return path


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
