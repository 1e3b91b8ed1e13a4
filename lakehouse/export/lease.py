"""One writer per project: a lease in the restricted zone, renewed by a heartbeat.

An export run and a purge hold their project's lease while they write, so two exports
that share the project's tables never run at once and a purge never interleaves with a
commit. The lease is a sequence of generations, each an object created with
create-if-absent (``ObjectStore.create``: a local hard link, S3 ``If-None-Match: *``)::

    leases/<project>/0000000007.json     holder, acquired_at, expires_at, released

The highest generation is the lease. An acquirer reads it; while it is live (not released,
``expires_at`` ahead, its process not provably gone) the acquirer is refused with the
holder and since when (``LeaseHeld``). Otherwise it creates generation + 1: of racing
acquirers exactly one creates it, the others read the winner's and are refused. The
winner lists once more and keeps the lease only if its generation is still the highest (an
acquirer that read a stale listing may create a number already deleted: it then sees a
higher one and backs off), then deletes the older generations.

Only the holder writes its generation's key: a heartbeat thread rewrites it every quarter
of the term with a new ``expires_at``. The holder trusts its lease for three quarters of the
term from the start of its last renewal (monotonic clock); ``ensure`` raises ``LeaseLost``
once that has passed or a higher generation exists, and runs call it before every state
write, publish and commit. So a holder that stalled past its term (paused, swapped out)
writes nothing more once another took over; machines' clocks must agree to within a
quarter of the term. Commits carry the run's Delta app transaction as well, so even a
write already under way when the lease passed is not repeated by the new holder.

A holder on this machine (same boot and PID namespace) whose process no longer runs is
stale at once: a killed run is resumed right away rather than after its term.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from lakehouse.errors import LakeError, ObjectNotFound
from lakehouse.export.errors import LeaseHeld, LeaseLost
from lakehouse.storage import ObjectStore, process_gone, process_space

LEASES_PREFIX = "leases"
RENEWALS_PER_TERM = 4
TRUSTED_FRACTION = 0.75  # of the term after a renewal started; the rest absorbs clock skew
ACQUIRE_ATTEMPTS = 20  # rounds lost to racing acquirers before giving up
POLL_SECONDS = 0.5  # how often a waiting acquirer looks again


def lease_prefix(project: str) -> str:
    return f"{LEASES_PREFIX}/{project}/"


def _key(project: str, generation: int) -> str:
    return f"{lease_prefix(project)}{generation:010d}.json"


def _generation_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name.removesuffix(".json")
    return int(stem) if name.endswith(".json") and stem.isdigit() else None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class LeaseRecord:
    """One generation of a project's lease: who holds it, since when, until when."""

    project: str
    generation: int
    user: str
    purpose: str  # e.g. "export of req-…", "opt-out purge"
    host: str
    pid: int
    process_space: str | None
    acquired_at: str
    expires_at: str
    released: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseRecord:
        return cls(**json.loads(data))

    @property
    def holder(self) -> str:
        return f"{self.purpose} by {self.user} on {self.host} (pid {self.pid})"

    def live(self, now: datetime) -> bool:
        """Held: not released, not expired, and its process not known to be gone."""
        if self.released or datetime.fromisoformat(self.expires_at) <= now:
            return False
        return not process_gone(self.process_space, self.pid)


class Lease:
    """A held lease; renewed by a heartbeat thread until ``release`` (or the ``with`` block ends)."""

    def __init__(self, store: ObjectStore, record: LeaseRecord, term: float, trusted_from: float) -> None:
        self.store = store
        self.record = record
        self.term = term
        self._trusted_until = trusted_from + term * TRUSTED_FRACTION
        self._lost = False
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-{record.project}", daemon=True)
        self._heartbeat.start()

    @property
    def project(self) -> str:
        return self.record.project

    @property
    def key(self) -> str:
        return _key(self.project, self.record.generation)

    def ensure(self) -> None:
        """Raise LeaseLost unless this process still holds the lease (call before writing)."""
        if not self._lost and time.monotonic() >= self._trusted_until:
            self._lost = True
        if not self._lost and _top_generation(self.store, self.project) != self.record.generation:
            self._lost = True
        if self._lost:
            raise LeaseLost(self.project)

    def release(self) -> None:
        """Stop renewing and mark the lease released, so the next writer need not wait for its term."""
        self._stop.set()
        self._heartbeat.join()
        try:
            self.ensure()
        except LeaseLost:
            return  # not ours any more: nothing to release
        self.store.put(self.key, replace(self.record, expires_at=_iso(_now()), released=True).to_json())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.term / RENEWALS_PER_TERM):
            try:
                self._renew()
            except LeaseLost:
                return
            except Exception:  # noqa: BLE001, S112 - a storage hiccup: try again; trust lapses if it lasts
                continue

    def _renew(self) -> None:
        started = time.monotonic()
        self.ensure()
        record = replace(self.record, expires_at=_iso(_now() + timedelta(seconds=self.term)))
        self.store.put(self.key, record.to_json())
        self.ensure()  # still the highest generation after the write
        self.record = record
        self._trusted_until = started + self.term * TRUSTED_FRACTION


def acquire(
    store: ObjectStore, project: str, *, user: str, purpose: str, term: float, wait: float = 0.0
) -> Lease:
    """Take the project's lease, waiting up to ``wait`` seconds for a live holder to finish;
    raises LeaseHeld (naming the holder and since when) if it is still held then."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return _try_acquire(store, project, user=user, purpose=purpose, term=term)
        except LeaseHeld:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(POLL_SECONDS, left))


def _try_acquire(store: ObjectStore, project: str, *, user: str, purpose: str, term: float) -> Lease:
    for _ in range(ACQUIRE_ATTEMPTS):
        latest = _latest(store, project)
        now = _now()
        if latest is not None and latest.live(now):
            raise LeaseHeld(project, latest.holder, latest.acquired_at)
        generation = (latest.generation if latest else 0) + 1
        started = time.monotonic()
        record = LeaseRecord(
            project=project,
            generation=generation,
            user=user,
            purpose=purpose,
            host=socket.gethostname(),
            pid=os.getpid(),
            process_space=process_space(),
            acquired_at=_iso(now),
            expires_at=_iso(now + timedelta(seconds=term)),
        )
        if not store.create(_key(project, generation), record.to_json()):
            continue  # another acquirer created this generation first: read it
        generations = _generations(store, project)
        if max(generations) != generation:
            store.delete(_key(project, generation))  # created below a newer holder: back off
            continue
        for older in generations:
            if older < generation:
                store.delete(_key(project, older))
        store.remove_temporary(lease_prefix(project))  # of renewals killed midway; none of ours yet
        return Lease(store, record, term, started)
    raise LakeError(f"could not take the lease on project {project}: too many concurrent acquirers")


def _generations(store: ObjectStore, project: str) -> list[int]:
    found = (_generation_of(info.key) for info in store.list(lease_prefix(project)))
    return [g for g in found if g is not None]


def _top_generation(store: ObjectStore, project: str) -> int | None:
    return max(_generations(store, project), default=None)


def _latest(store: ObjectStore, project: str) -> LeaseRecord | None:
    """The highest generation's record (None when the project never had a lease)."""
    while True:
        top = _top_generation(store, project)
        if top is None:
            return None
        try:
            return LeaseRecord.from_json(store.get(_key(project, top)))
        except ObjectNotFound:
            continue  # deleted by a newer holder between the listing and the read
