"""Process-wide rate limits for archive traffic and retry with jittered backoff."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from lakehouse.errors import TransientStorageError
from lakehouse.storage.base import ObjectInfo, ObjectReader

T = TypeVar("T")


class TokenBucket:
    """A thread-safe token bucket; ``rate`` tokens per second, burst of one second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.capacity = max(self.rate, 1.0)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens, sleeping as needed; returns seconds slept."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


class Throttle:
    """Caps requests/s and bytes/s. One instance per archive is shared by all threads.

    Adaptive (AIMD): ``observe`` a slow request or a transient error and the rates
    halve (never below ``min_fraction`` of the caps); each fast success adds back
    a small step, so the run slows down when the archive struggles and recovers
    by itself. A rate of 0 means no cap, and then there is nothing to adapt.
    """

    def __init__(
        self,
        requests_per_second: float = 0,
        bytes_per_second: float = 0,
        *,
        adaptive: bool = False,
        slow_request_seconds: float = 2.0,
        min_fraction: float = 0.05,
    ) -> None:
        self.requests = TokenBucket(requests_per_second)
        self.bytes = TokenBucket(bytes_per_second)
        self._caps = (float(requests_per_second), float(bytes_per_second))
        self.adaptive = adaptive
        self.slow_request_seconds = slow_request_seconds
        self.min_fraction = min_fraction
        self.fraction = 1.0
        self._lock = threading.Lock()

    def observe(self, seconds: float, ok: bool) -> None:
        """Feed back one request's latency and outcome (transient failure → ok=False)."""
        if not self.adaptive:
            return
        with self._lock:
            if not ok or seconds > self.slow_request_seconds:
                self.fraction = max(self.min_fraction, self.fraction / 2)
            elif self.fraction < 1.0:
                self.fraction = min(1.0, self.fraction + 0.02)
            else:
                return
            self.requests.rate = self._caps[0] * self.fraction
            self.bytes.rate = self._caps[1] * self.fraction

    def before_request(self) -> None:
        self.requests.take(1)

    def after_bytes(self, n: int) -> None:
        # Bytes are charged after the read: the caller pays the debt before its next request.
        if n:
            self.bytes.take(n)


def with_retries(
    call: Callable[[], T],
    *,
    max_retries: int,
    base: float,
    cap: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry TransientStorageError with full-jitter exponential backoff."""
    attempt = 0
    while True:
        try:
            return call()
        except TransientStorageError:
            if attempt >= max_retries:
                raise
            sleep(random.uniform(0, min(cap, base * (2**attempt))))
            attempt += 1


class ThrottledReader(ObjectReader):
    """Read-only wrapper that throttles and retries every call of another reader."""

    def __init__(
        self,
        inner: ObjectReader,
        throttle: Throttle,
        *,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        self._inner = inner
        self._throttle = throttle
        self._retry = {"max_retries": max_retries, "base": backoff_base, "cap": backoff_max}
        self.uri = inner.uri

    def _call(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self._throttle.before_request()
            started = time.monotonic()
            try:
                result = fn()
            except TransientStorageError:
                self._throttle.observe(time.monotonic() - started, ok=False)
                raise
            self._throttle.observe(time.monotonic() - started, ok=True)
            return result

        return with_retries(attempt, **self._retry)  # type: ignore[arg-type]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Listing pages are throttled inside the inner reader's paging via head-less calls;
        # here each yielded page boundary is not visible, so charge one request per 1000 keys.
        for n, info in enumerate(self._inner.list(prefix)):
            if n % 1000 == 0:
                self._throttle.before_request()
            yield info

    def head(self, key: str) -> ObjectInfo:
        return self._call(lambda: self._inner.head(key))

    def get(self, key: str) -> bytes:
        data = self._call(lambda: self._inner.get(key))
        self._throttle.after_bytes(len(data))
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data = self._call(lambda: self._inner.get_range(key, start, length))
        self._throttle.after_bytes(len(data))
        return data
