"""The storage layer: local and S3 stores, the read-only archive handle, throttle and retries."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lakehouse_testing import S3Server, write_s3_config

from lakehouse.config import load_settings
from lakehouse.errors import (
    ConfigError,
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
)
from lakehouse.storage import (
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    Throttle,
    ThrottledReader,
    TokenBucket,
    open_archive,
    open_zone,
    with_retries,
)
from lakehouse.storage.local import LocalReader, LocalStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_charges_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, clock=clock)
    assert [bucket.take() for _ in range(100)] == [0.0] * 100  # one second of burst
    assert bucket.take() == pytest.approx(0.01)  # then one token per 1/rate seconds
    assert bucket.take() == pytest.approx(0.02)
    clock.now += 1.0  # a second later the debt is paid and the bucket refilled
    assert bucket.take() == 0.0


def test_token_bucket_shared_by_threads_hands_out_exactly_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, clock=clock)
    with ThreadPoolExecutor(4) as pool:
        waits = list(pool.map(lambda _: bucket.take(), range(1100)))
    assert sum(1 for w in waits if w == 0.0) == 1000
    assert max(waits) == pytest.approx(0.1)  # the 100 extra requests queue up behind each other


def test_zero_rate_means_no_cap() -> None:
    bucket = TokenBucket(0.0, clock=FakeClock())
    assert all(bucket.take(10**9) == 0.0 for _ in range(10))


def test_byte_cap_charges_bytes_after_the_read() -> None:
    throttle = Throttle(0, 1000)
    throttle.bytes._clock = FakeClock()
    throttle.bytes._last = 100.0
    assert throttle.bytes.take(1000) == 0.0
    assert throttle.bytes.take(10) == pytest.approx(0.01)


def test_transient_errors_are_retried_with_jittered_backoff() -> None:
    sleeps: list[float] = []
    calls = iter([TransientStorageError("503"), TransientStorageError("503"), "ok"])

    def call() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert with_retries(call, max_retries=5, base=0.5, cap=10, sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0  # full jitter under base * 2**attempt


def test_backoff_is_capped_and_retries_give_up() -> None:
    sleeps: list[float] = []

    def always() -> None:
        raise TransientStorageError("timeout")

    with pytest.raises(TransientStorageError):
        with_retries(always, max_retries=6, base=1.0, cap=2.0, sleep=sleeps.append)
    assert len(sleeps) == 6 and max(sleeps) <= 2.0


def test_permanent_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    calls = []

    def denied() -> None:
        calls.append(1)
        raise PermanentStorageError("403")

    with pytest.raises(PermanentStorageError):
        with_retries(denied, max_retries=5, base=0.1, cap=1, sleep=sleeps.append)
    assert calls == [1] and sleeps == []


class FlakyReader(ObjectReader):
    """A tiny in-memory reader that fails the first ``failures`` calls of each key."""

    uri = "memory://"

    def __init__(self, failures: int, error: type[Exception]) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[str] = []

    def _maybe_fail(self, key: str) -> None:
        self.calls.append(key)
        if self.calls.count(key) <= self.failures:
            raise self.error(f"failure on {key!r}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        yield ObjectInfo("a", 3, "e")

    def head(self, key: str) -> ObjectInfo:
        self._maybe_fail(key)
        return ObjectInfo(key, 3, "e")

    def get(self, key: str) -> bytes:
        self._maybe_fail(key)
        return b"abc"

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self._maybe_fail(key)
        return b"abc"[start : start + length]


def test_throttled_reader_retries_transient_and_not_permanent() -> None:
    flaky = FlakyReader(2, TransientStorageError)
    reader = ThrottledReader(flaky, Throttle(), max_retries=3, backoff_base=0.001, backoff_max=0.001)
    assert reader.get_range("a", 1, 5) == b"bc"
    assert flaky.calls == ["a", "a", "a"]

    denied = FlakyReader(1, ObjectNotFound)
    reader = ThrottledReader(denied, Throttle(), max_retries=3, backoff_base=0.001, backoff_max=0.001)
    with pytest.raises(ObjectNotFound):
        reader.head("b")
    assert denied.calls == ["b"]


def test_adaptive_throttle_backs_off_when_the_archive_struggles_and_recovers() -> None:
    throttle = Throttle(100, 1_000_000, adaptive=True, slow_request_seconds=0.5, min_fraction=0.1)
    throttle.observe(0.01, ok=True)
    assert throttle.requests.rate == 100  # healthy: full rate
    throttle.observe(2.0, ok=True)  # slow answer
    assert throttle.requests.rate == 50 and throttle.bytes.rate == 500_000
    for _ in range(5):
        throttle.observe(0.01, ok=False)  # transient errors
    assert throttle.requests.rate == pytest.approx(10)  # never below min_fraction
    for _ in range(200):
        throttle.observe(0.01, ok=True)
    assert throttle.requests.rate == 100  # recovered step by step, capped at the configured rate


def test_throttled_reader_feeds_failures_back_to_the_throttle() -> None:
    throttle = Throttle(100, 0, adaptive=True)
    reader = ThrottledReader(FlakyReader(2, TransientStorageError), throttle, max_retries=3,
                             backoff_base=0.001, backoff_max=0.001)
    assert reader.get("a") == b"abc"
    assert throttle.fraction == pytest.approx(0.25 + 0.02)  # two halvings, one success step


def test_throttled_reader_has_no_write_methods(local_root: Path) -> None:
    settings = load_settings(local_root / "lakehouse.toml", env={})
    archive = open_archive(settings)
    assert not any(hasattr(archive, name) for name in ("put", "delete", "move"))
    with pytest.raises(ConfigError):
        open_zone(settings, "archive")
    assert hasattr(open_zone(settings, "restricted"), "put")


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ("b/2", "a/1", "b/1", "c"):
        store.put(key, key.encode() * 3)
    assert [i.key for i in store.list()] == ["a/1", "b/1", "b/2", "c"]
    assert [i.key for i in store.list("b/")] == ["b/1", "b/2"]
    assert store.get("b/1") == b"b/1b/1b/1"
    assert store.get_range("b/1", 3, 4) == b"b/1b"
    assert store.get_range("b/1", 7, 100) == b"/1"  # short at the end
    assert store.head("c").size == 3
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic put leaves no temporary files
    store.delete("c")
    store.delete("c")  # deleting a missing object is fine
    for call in (lambda: store.get("c"), lambda: store.head("c"), lambda: store.get_range("c", 0, 1)):
        with pytest.raises(ObjectNotFound):
            call()
    with pytest.raises(PermanentStorageError):
        store.get("../outside")


def test_deferred_writes_are_whole_at_once_and_synced_together(tmp_path: Path) -> None:
    """A batch's objects are written without a flush each, then flushed together (files, then
    their folders) before the batch is marked done."""
    store = LocalStore(tmp_path)
    keys = [f"objects/{study}/{n}.dcm" for study in ("s1", "s2") for n in range(3)]
    for key in keys:
        store.put_deferred(key, key.encode())
    assert [i.key for i in store.list("objects/")] == sorted(keys)
    assert all(store.get(key) == key.encode() for key in keys)
    assert not list(tmp_path.rglob(".tmp-*"))  # each appeared whole (a rename), no temporaries left
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    os.fsync = recording_fsync
    try:
        store.sync(keys)
    finally:
        os.fsync = real_fsync
    expected = {str(tmp_path / key) for key in keys} | {str(tmp_path / "objects" / s) for s in ("s1", "s2")}
    assert set(synced) == expected and len(synced) == len(expected)


def test_local_etag_changes_when_the_file_changes(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"one")
    reader = LocalReader(tmp_path)
    before = reader.head("f").etag
    (tmp_path / "f").write_bytes(b"three")
    assert reader.head("f").etag != before
    assert LocalReader(tmp_path / "missing").exists("f") is False


@pytest.mark.s3
def test_s3_reader_lists_pages_reads_ranges_and_maps_404(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket("store")
    client = s3_server.client()
    with ThreadPoolExecutor(8) as pool:  # more than one listing page of 1000 keys
        list(
            pool.map(
                lambda n: client.put_object(
                    Bucket=bucket, Key=f"archive/k{n:05d}", Body=f"object {n}".encode()
                ),
                range(1005),
            )
        )
    client.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"not in the zone")
    settings = load_settings(write_s3_config(tmp_path, s3_server, {"archive": bucket}), env={})
    archive = open_archive(settings)

    listed = list(archive.list())
    assert [i.key for i in listed] == [f"k{n:05d}" for n in range(1005)]
    assert listed[7].etag == hashlib.md5(b"object 7").hexdigest()
    assert listed[7].storage_class == "STANDARD"
    assert archive.get_range("k00007", 2, 4) == b"ject"
    assert archive.get_range("k00007", 100, 10) == b""  # past the end
    assert archive.head("k00007").size == 8
    for call in (
        lambda: archive.get("nope"),
        lambda: archive.head("nope"),
        lambda: archive.get_range("nope", 0, 9),
    ):
        with pytest.raises(ObjectNotFound):
            call()
    assert not archive.exists("nope")


@pytest.mark.s3
def test_s3_store_writes_and_deletes(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket("zone")
    settings = load_settings(write_s3_config(tmp_path, s3_server, {"restricted": bucket}), env={})
    store = open_zone(settings, "restricted")
    info = store.put("x/y", b"hello")
    assert info.etag == hashlib.md5(b"hello").hexdigest()
    assert store.get("x/y") == b"hello"
    store.delete("x/y")
    assert not store.exists("x/y")


def _race_to_create(store: ObjectStore, key: str, racers: int = 8) -> tuple[list[bool], list[bytes]]:
    contents = [f"racer {i}".encode() for i in range(racers)]
    start = threading.Barrier(racers)

    def create(data: bytes) -> bool:
        start.wait()
        return store.create(key, data)

    with ThreadPoolExecutor(racers) as pool:
        won = list(pool.map(create, contents))
    return won, contents


def test_local_create_only_if_absent_has_exactly_one_winner(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "zone")
    won, contents = _race_to_create(store, "keys/p.key")
    assert won.count(True) == 1
    assert store.get("keys/p.key") == contents[won.index(True)]
    assert not store.create("keys/p.key", b"later") and store.get("keys/p.key") == contents[won.index(True)]
    assert [p.name for p in (tmp_path / "zone" / "keys").iterdir()] == ["p.key"]  # no temp files left


def test_s3_create_only_if_absent_has_exactly_one_winner(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket("zone")
    settings = load_settings(write_s3_config(tmp_path, s3_server, {"restricted": bucket}), env={})
    store = open_zone(settings, "restricted")
    won, contents = _race_to_create(store, "keys/p.key")
    assert won.count(True) == 1
    assert store.get("keys/p.key") == contents[won.index(True)]
    assert not store.create("keys/p.key", b"later")


class _FlakyListingClient:
    """Stands in for boto3's client in one unit test: the first listing page request fails
    with S3's 503 SlowDown, then two pages come back (the real S3 paths are tested above)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []

    def list_objects_v2(self, **request: object) -> dict:
        from botocore.exceptions import ClientError

        self.requests.append(request)
        if len(self.requests) == 1:
            raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "ListObjectsV2")
        if "ContinuationToken" not in request:
            return {"Contents": [{"Key": "p/a", "Size": 1, "ETag": '"e1"'}], "IsTruncated": True, "NextContinuationToken": "t"}
        return {"Contents": [{"Key": "p/b", "Size": 2, "ETag": '"e2"'}], "IsTruncated": False}


def test_s3_listing_retries_a_failed_page_without_restarting() -> None:
    from lakehouse.config import ZoneSettings
    from lakehouse.storage.s3 import S3Reader

    client = _FlakyListingClient()
    reader = S3Reader(ZoneSettings(name="archive", uri="s3://bucket/p"), client=client,
                      list_retry={"base": 0.001, "cap": 0.001})
    assert [(i.key, i.etag) for i in reader.list()] == [("a", "e1"), ("b", "e2")]
    assert len(client.requests) == 3 and client.requests[2]["ContinuationToken"] == "t"
