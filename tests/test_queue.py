"""The JobQueue contract, run against the embedded server and the machine's Redis server.

The server at ``ENAS_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) is shared with
others: every test uses a random key prefix and deletes only its own keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from service.queue import FINISHED, JobQueue, retrain_id_of
from service.redis_conn import connect, socket_path, start_embedded

ROOT = Path(__file__).resolve().parents[1]
SERVER_URL = os.environ.get("ENAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _settings(home: Path, url: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(home=home, redis_url=url)


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedded server for the module's tests, stopped at the end."""
    home = tmp_path_factory.mktemp("home")
    handle, _ = start_embedded(home)
    yield home
    handle.shutdown()


def _server_client() -> redis.Redis:
    client = redis.Redis.from_url(SERVER_URL, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis server at {SERVER_URL}")
    return client


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.redis_server)])
def queue(request: pytest.FixtureRequest) -> Iterator[JobQueue]:
    """A JobQueue with a fresh random prefix on each backend; its keys are deleted afterwards."""
    if request.param == "embedded":
        client = connect(_settings(request.getfixturevalue("embedded_home")))
    else:
        client = _server_client()
    q = JobQueue(client, prefix=f"enastest-{uuid.uuid4().hex[:12]}")
    yield q
    keys = list(client.scan_iter(match=f"{q.prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_push_take_ack_is_fifo_and_reliable(queue: JobQueue) -> None:
    assert queue.push(1) == 1
    assert queue.push(2) == 2
    assert queue.depth() == 2
    assert queue.take("w1", timeout=0.1) == 1
    assert queue.processing("w1") == [1]
    assert queue.depth() == 1
    assert queue.take("w2", timeout=0) == 2
    assert queue.processing("w2") == [2]
    assert queue.ack("w1", 1) is True
    assert queue.ack("w1", 1) is False
    assert queue.processing("w1") == []
    assert queue.processing("w2") == [2]  # not acked: stays for a later lease reaper


def test_release_puts_the_job_first_in_line(queue: JobQueue) -> None:
    queue.push(1)
    queue.push(2)
    assert queue.take("w", timeout=0) == 1
    queue.release("w", 1)
    assert queue.processing("w") == []
    assert queue.take("w", timeout=0) == 1
    assert queue.take("w", timeout=0) == 2


def test_take_times_out_on_empty_queue(queue: JobQueue) -> None:
    assert queue.take("w", timeout=0.2) is None
    assert queue.take("w", timeout=0) is None
    assert queue.depth() == 0


def test_take_blocks_until_a_push(queue: JobQueue) -> None:
    got: list[int | None] = []
    taker = threading.Thread(target=lambda: got.append(queue.take("w", timeout=5)))
    taker.start()
    queue.push(7)
    taker.join(timeout=10)
    assert got == [7]


def test_malformed_item_is_dropped(queue: JobQueue) -> None:
    queue.redis.lpush(queue.key("queue"), "not-an-id")
    assert queue.take("w", timeout=0) is None
    assert queue.processing("w") == []


def test_retrain_jobs_share_the_queue(queue: JobQueue) -> None:
    queue.push(3)
    queue.push_retrain(8)
    queue.redis.lpush(queue.key("queue"), "retrain:x")  # malformed: dropped
    assert queue.take("w", timeout=0) == 3
    assert queue.take("w", timeout=0) == "retrain:8" and retrain_id_of("retrain:8") == 8
    assert queue.take("w", timeout=0) is None and queue.processing("w") == ["retrain:8", 3]
    assert queue.present() == {3, "retrain:8"}
    assert queue.acquire_lease("retrain:8", "w", 5) and queue.renew_lease("retrain:8", "w", 5)
    assert queue.leased(["retrain:8", 3]) == {"retrain:8"}
    assert queue.release_lease("retrain:8", "w")
    queue.release("w", "retrain:8")
    assert queue.ack("w", 3) and queue.processing("w") == [] and queue.depth() == 1
    assert queue.take("w", timeout=0) == "retrain:8" and queue.ack("w", "retrain:8")
    assert retrain_id_of(3) is None


def test_publish_keeps_last_event_with_seq(queue: JobQueue) -> None:
    assert queue.last_event(5) is None
    first = queue.publish(5, {"type": "epoch", "epoch": 0, "metrics": {"loss": float("nan")}})
    assert first == {"type": "epoch", "epoch": 0, "metrics": {"loss": None}, "search_id": 5, "seq": 1}
    queue.publish(5, {"type": "epoch", "epoch": 1})
    last = queue.last_event(5)
    assert last is not None and last["epoch"] == 1 and last["seq"] == 2
    assert 0 < queue.redis.ttl(queue.key("last", 5)) <= queue.event_ttl_s
    with pytest.raises(TypeError):
        queue.publish(5, {"type": "epoch", "bad": object()})


def test_subscribe_replays_last_then_follows_until_finished(queue: JobQueue) -> None:
    queue.publish(9, {"type": "status", "status": "running"})
    events = queue.subscribe(9, heartbeat=0.2)
    assert next(events)["type"] == "status"  # replay; the subscription is live from here on
    queue.publish(9, {"type": "epoch", "epoch": 0})
    assert next(events)["epoch"] == 0
    assert next(events) == {"type": "heartbeat"}
    queue.publish(9, {"type": FINISHED, "status": "succeeded"})
    assert next(events)["status"] == "succeeded"
    assert list(events) == []


def test_subscribe_after_finish_yields_only_the_last_event(queue: JobQueue) -> None:
    queue.publish(4, {"type": FINISHED, "status": "failed", "error": "boom"})
    assert [e["error"] for e in queue.subscribe(4)] == ["boom"]


def test_cancel_flag_and_push_clears_it(queue: JobQueue) -> None:
    assert queue.cancel_requested(3) is False
    queue.request_cancel(3)
    queue.request_cancel(3)
    assert queue.cancel_requested(3) is True
    queue.push(3)
    assert queue.cancel_requested(3) is False


def test_lease_is_exclusive_renewable_and_released(queue: JobQueue) -> None:
    assert queue.acquire_lease(5, "a", ttl_s=5) is True
    assert queue.acquire_lease(5, "a", ttl_s=5) is True  # its own: renewed
    assert queue.acquire_lease(5, "b", ttl_s=5) is False
    assert queue.lease_holder(5) == "a"
    assert queue.renew_lease(5, "a", ttl_s=5) is True
    assert queue.renew_lease(5, "b", ttl_s=5) is False
    assert queue.release_lease(5, "b") is False and queue.lease_holder(5) == "a"
    assert queue.release_lease(5, "a") is True and queue.lease_holder(5) is None
    assert queue.acquire_lease(5, "b", ttl_s=0.05) is True
    assert _eventually(lambda: queue.lease_holder(5) is None)  # expired
    assert queue.acquire_lease(5, "a", ttl_s=5) is True


def test_renew_restores_what_redis_lost(queue: JobQueue) -> None:
    queue.push(6)
    assert queue.take("a", timeout=0) == 6 and queue.acquire_lease(6, "a", ttl_s=5)
    queue.redis.delete(queue.key("lease", 6), queue.key("processing", "a"))  # a restart without persistence
    assert queue.renew_lease(6, "a", ttl_s=5) is True
    assert queue.lease_holder(6) == "a" and queue.processing("a") == [6]
    assert queue.renew_lease(6, "a", ttl_s=5) is True and queue.processing("a") == [6]  # not twice


def test_reaper_requeues_only_dead_workers_jobs(queue: JobQueue) -> None:
    for search_id in (1, 2, 3):
        queue.push(search_id)
    queue.register_worker("dead", ttl_s=0.05)
    queue.register_worker("alive", ttl_s=5)
    assert queue.take("dead", timeout=0) == 1 and queue.acquire_lease(1, "dead", ttl_s=0.05)
    assert queue.take("dead", timeout=0) == 2  # taken, lease never acquired (died in between)
    assert queue.take("alive", timeout=0) == 3 and queue.acquire_lease(3, "alive", ttl_s=5)
    assert queue.reap() == []  # everybody's key is still alive
    assert _eventually(lambda: not queue.worker_alive("dead") and queue.lease_holder(1) is None)
    assert sorted(queue.reap()) == [1, 2]
    assert queue.processing("dead") == [] and queue.processing("alive") == [3]
    assert queue.workers() == ["alive"]  # the dead worker is forgotten once its list is empty
    assert sorted([queue.take("b", timeout=0), queue.take("b", timeout=0)]) == [1, 2]
    assert queue.present() == {1, 2, 3} and queue.leased([1, 2, 3]) == {3}


def test_reaper_drops_a_copy_another_worker_leases(queue: JobQueue) -> None:
    queue.register_worker("dead", ttl_s=0.05)
    queue.redis.lpush(queue.key("processing", "dead"), 4)
    assert queue.acquire_lease(4, "other", ttl_s=5)
    assert _eventually(lambda: not queue.worker_alive("dead"))
    assert queue.reap() == [] and queue.processing("dead") == [] and queue.depth() == 0


def test_restore_keeps_the_cancel_flag_and_lock_is_exclusive(queue: JobQueue) -> None:
    queue.request_cancel(8)
    queue.restore(8)
    assert queue.cancel_requested(8) and queue.take("w", timeout=0) == 8
    assert queue.try_lock("reconcile", "a", ttl_s=5) is True
    assert queue.try_lock("reconcile", "b", ttl_s=5) is False
    assert queue.try_lock("reconcile", "a", ttl_s=5) is True  # its own: extended


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


_CHILD = """
import sys
from pathlib import Path
from types import SimpleNamespace
from service.queue import JobQueue
from service.redis_conn import connect
client = connect(SimpleNamespace(home=Path(sys.argv[1]), redis_url=None))
JobQueue(client, prefix=sys.argv[2]).push(int(sys.argv[3]))
print(client.info("server")["process_id"], flush=True)
sys.stdin.read()  # stay attached until the parent says so
"""


def _start_child(home: Path, prefix: str, search_id: int) -> subprocess.Popen[str]:
    """A process that connects to the home's server, pushes ``search_id``, prints the server's
    pid and stays attached until its stdin is closed."""
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), prefix, str(search_id)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _run_children(home: Path, prefix: str, ids: list[int]) -> list[int]:
    """Run one child per id at once, all attached together; returns the server pid each saw."""
    children = [_start_child(home, prefix, i) for i in ids]
    pids = [int(c.stdout.readline()) for c in children if c.stdout is not None]
    for c in children:
        c.communicate("", timeout=60)
    assert [c.returncode for c in children] == [0] * len(ids)
    return pids


def test_processes_share_one_embedded_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pids = _run_children(home, "shared", [1, 2, 3])  # three at once on a fresh home: no race
    assert len(set(pids)) == 1
    # the children have exited and nobody else was attached: the server stopped, saving redis.db
    assert not socket_path(home).exists()
    assert (home / "redis.db").exists()
    handle, url = start_embedded(home)
    try:
        assert handle.started and url == f"unix://{socket_path(home)}"
        q = JobQueue(redis.Redis.from_url(url, decode_responses=True), prefix="shared")
        assert sorted(q.take("w", timeout=0) for _ in range(3)) == [1, 2, 3]  # reloaded from redis.db
        assert _run_children(home, "shared", [4]) == [handle.pid]  # attaches to the running server
        assert q.take("w", timeout=0) == 4
    finally:
        assert handle.shutdown() is True
    assert not socket_path(home).exists()


def test_server_outlives_its_starter_while_others_are_attached(tmp_path: Path) -> None:
    home = tmp_path / "h"
    first, _ = start_embedded(home)
    # a second process attaches and waits; the first detaches: the server must stay
    child = _start_child(home, "p", 1)
    assert child.stdout is not None
    assert int(child.stdout.readline()) == first.pid
    assert first.shutdown() is False
    assert socket_path(home).exists()
    child.communicate("", timeout=60)  # the child exits, the last user: it stops the server
    assert not socket_path(home).exists()


def test_long_home_path_gets_a_short_socket(tmp_path: Path) -> None:
    home = tmp_path / ("x" * 120)
    assert len(str(socket_path(home))) < 100
    handle, url = start_embedded(home)
    try:
        assert redis.Redis.from_url(url).ping()
    finally:
        handle.shutdown()


def test_connect_uses_configured_url(tmp_path: Path) -> None:
    _server_client()
    client = connect(_settings(tmp_path, SERVER_URL))
    assert client.ping() is True
    assert not (tmp_path / "redis.sock").exists()
