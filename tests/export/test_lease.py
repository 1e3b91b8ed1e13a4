"""The project lease (``lakehouse.export.lease``) on a local folder and on S3: one holder, refusals
that name it, race-safe acquisition and take-over, renewal, and a holder that lost it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lakehouse_testing import S3Server, write_s3_config

from lakehouse.config import init_root, load_settings
from lakehouse.export.errors import LeaseHeld, LeaseLost
from lakehouse.export.lease import LeaseRecord, acquire, lease_prefix
from lakehouse.storage import ObjectStore, open_zone, process_space

PROJECT = "lung-ai"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The restricted zone, a local folder or an S3 bucket."""
    if request.param == "local":
        config = init_root(tmp_path / "lh")
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        config = write_s3_config(tmp_path / "lh", server, {"restricted": server.new_bucket("rest")})
    return open_zone(load_settings(config, env={}), "restricted")


def _keys(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list(lease_prefix(PROJECT))]


def _record(store: ObjectStore) -> LeaseRecord:
    (key,) = _keys(store)
    return LeaseRecord.from_json(store.get(key))


def _plant(store: ObjectStore, generation: int, **changes: object) -> LeaseRecord:
    """A lease generation written as another holder would have (on another machine by default)."""
    now = datetime.now(UTC)
    record = LeaseRecord(
        project=PROJECT, generation=generation, user="olga", purpose="export of req-0123456789ab",
        host="node-7", pid=4242, process_space="another-machine", acquired_at=now.isoformat(),
        expires_at=(now + timedelta(seconds=60)).isoformat(),
    )
    record = replace(record, **changes)  # type: ignore[arg-type]
    assert store.create(f"{lease_prefix(PROJECT)}{generation:010d}.json", record.to_json())
    return record


def test_one_holder_and_a_refusal_that_names_it(store: ObjectStore) -> None:
    with acquire(store, PROJECT, user="olga", purpose="export of req-a", term=30) as lease:
        with pytest.raises(LeaseHeld) as refused:
            acquire(store, PROJECT, user="root", purpose="opt-out purge", term=30)
        message = str(refused.value)
        assert message.startswith(f"project {PROJECT} is busy: export of req-a by olga on ")
        assert f"since {lease.record.acquired_at}" in message and "\n" not in message
        assert refused.value.details == {
            "project": PROJECT, "holder": lease.record.holder, "since": lease.record.acquired_at
        }
    released = _record(store)
    assert released.released and released.generation == 1
    with acquire(store, PROJECT, user="root", purpose="opt-out purge", term=30) as second:
        assert second.record.generation == 2
        assert _keys(store) == [second.key]  # older generations are deleted


def test_racing_acquirers_one_wins(store: ObjectStore) -> None:
    winners, refused = [], []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        try:
            winners.append(acquire(store, PROJECT, user=f"u{n}", purpose="race", term=30))
        except LeaseHeld:
            refused.append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(refused) == 7
    winners[0].release()


def test_a_live_holder_elsewhere_is_waited_for_then_refused(store: ObjectStore) -> None:
    held = _plant(store, 5)
    started = time.monotonic()
    with pytest.raises(LeaseHeld, match="node-7 \\(pid 4242\\)"):
        acquire(store, PROJECT, user="root", purpose="opt-out purge", term=30, wait=1.0)
    assert time.monotonic() - started >= 1.0
    assert _record(store) == held


def test_an_expired_lease_is_taken_over_with_the_next_generation(store: ObjectStore) -> None:
    _plant(store, 5, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    with acquire(store, PROJECT, user="olga", purpose="export of req-b", term=30) as lease:
        assert lease.record.generation == 6 and _keys(store) == [lease.key]


def test_a_holder_on_this_machine_whose_process_is_gone_is_stale_at_once(store: ObjectStore) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    _plant(store, 3, pid=int(gone.stdout), process_space=process_space())
    with acquire(store, PROJECT, user="olga", purpose="export of req-c", term=30) as lease:
        assert lease.record.generation == 4


def test_the_heartbeat_renews_and_a_taken_over_holder_stops(store: ObjectStore) -> None:
    lease = acquire(store, PROJECT, user="olga", purpose="export of req-d", term=2)
    first = datetime.fromisoformat(lease.record.expires_at)
    time.sleep(1.3)
    renewed = LeaseRecord.from_json(store.get(lease.key))
    assert datetime.fromisoformat(renewed.expires_at) > first and not renewed.released
    lease.ensure()
    # Another process takes over (e.g. this one was paused past its term): ours is lost.
    _plant(store, lease.record.generation + 1, expires_at=(datetime.now(UTC) + timedelta(seconds=60)).isoformat())
    with pytest.raises(LeaseLost, match=f"lost the lease on project {PROJECT}"):
        lease.ensure()
    lease.release()  # releases nothing: the newer holder's record stays as it was
    assert json.loads(store.get(_keys(store)[-1]))["released"] is False


def test_a_holder_that_stops_renewing_stops_trusting_its_lease(store: ObjectStore) -> None:
    lease = acquire(store, PROJECT, user="olga", purpose="export of req-e", term=2)
    lease._stop.set()  # the heartbeat stalls (as in a paused process)
    time.sleep(1.6)  # three quarters of the term
    with pytest.raises(LeaseLost):
        lease.ensure()
    lease.release()
