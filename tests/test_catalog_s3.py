"""Catalog sync against a real S3 endpoint (moto server over HTTP), proven from its request log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lakehouse_testing import RequestLog, S3Server, write_s3_config

from lakehouse import lake
from lakehouse.catalog import catalog_stats, sync_catalog
from lakehouse.config import load_settings
from lakehouse.synth import generate_archive

pytestmark = pytest.mark.s3

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _PlainRequestLog(RequestLog):
    """The server's request log, also for lines werkzeug colours (every status but 200)."""

    def emit(self, record: logging.LogRecord) -> None:
        record.msg = _ANSI.sub("", record.getMessage())
        record.args = ()
        super().emit(record)


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The shared S3 server, seen through a request log that misses no status."""
    log = _PlainRequestLog()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(log)
    try:
        yield S3Server(endpoint_url=s3_server.endpoint_url, log=log)
    finally:
        werkzeug.removeHandler(log)


def _upload(server: S3Server, bucket: str, **synth: int) -> dict[str, int]:
    client = server.client()
    sizes = {}
    for key, data in generate_archive(**synth):
        client.put_object(Bucket=bucket, Key=f"archive/{key}", Body=data)
        sizes[key] = len(data)
    return sizes


def _object_gets(server: S3Server, bucket: str) -> list[str]:
    """GETs of objects (not listings) in ``bucket``, from the server's own log."""
    return [p for m, p, _ in server.log.for_bucket(bucket) if m == "GET" and p.startswith(f"/{bucket}/")]


def test_sync_sends_only_reads_to_the_archive_and_is_incremental(s3: S3Server, tmp_path: Path) -> None:
    archive = s3.new_bucket("archive")
    sizes = _upload(s3, archive, patients=2, seed=11, layout="opaque")
    settings = load_settings(write_s3_config(tmp_path, s3, {"archive": archive}), env={})
    s3.log.clear()

    first = sync_catalog(settings)
    assert first.read == first.added == len(sizes) and first.failed == 0
    assert s3.log.methods_for_bucket(archive) <= {"GET", "HEAD"}  # LIST is a GET on the bucket
    assert len(_object_gets(s3, archive)) == len(sizes)  # one ranged GET per object
    frame = pl.read_delta(lake.table(settings, "catalog").uri)
    assert frame.height == len(sizes)
    assert set(frame["storage_class"]) == {"STANDARD"}
    assert frame["etag"].str.len_chars().min() == 32  # S3 ETags (MD5 hex), not mtimes

    s3.log.clear()
    second = sync_catalog(settings)
    assert (second.read, second.unchanged, second.bytes_read) == (0, len(sizes), 0)
    assert _object_gets(s3, archive) == []  # no object body was read
    assert s3.log.methods_for_bucket(archive) == {"GET"}  # only the listing


def test_large_objects_over_s3_read_at_most_the_header_range(s3: S3Server, tmp_path: Path) -> None:
    archive = s3.new_bucket("archive")
    sizes = _upload(s3, archive, patients=1, seed=12, ct_size=512, ct_slices=3)
    settings = load_settings(write_s3_config(tmp_path, s3, {"archive": archive}), env={})
    result = sync_catalog(settings)
    assert result.read == len(sizes) and result.failed == 0
    assert result.bytes_read < sum(sizes.values()) / 4
    ct = pl.read_delta(lake.table(settings, "catalog").uri).filter(pl.col("modality") == "CT")
    assert ct.height == 3 and ct["header_bytes_read"].max() <= 65536 < ct["size"].min()


def test_catalog_table_itself_on_s3(s3: S3Server, tmp_path: Path) -> None:
    archive, restricted = s3.new_bucket("archive"), s3.new_bucket("restricted")
    sizes = _upload(s3, archive, patients=1, seed=13)
    config = write_s3_config(tmp_path, s3, {"archive": archive, "restricted": restricted})
    settings = load_settings(config, env={})
    s3.log.clear()
    sync_catalog(settings)
    assert catalog_stats(settings)["objects"] == len(sizes)
    assert lake.table(settings, "catalog").uri.startswith(f"s3://{restricted}/")
    # The archive bucket saw reads only, the restricted bucket took the Delta writes.
    assert s3.log.methods_for_bucket(archive) <= {"GET", "HEAD"}
    assert "PUT" in s3.log.methods_for_bucket(restricted)
