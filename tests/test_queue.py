"""The queue's contract (jobs, events, cancel flags, leases, workers), run against the embedded
server and the machine's Redis server.

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

from service.queue import FINISHED, HEARTBEAT, Job, Queue
from service.queue.connection import connect, socket_path, start_embedded
from service.queue.events import DEFAULT_EVENT_TTL_S
from service.queue.jobs import decode_job, encode_job

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
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    """A Queue with a fresh random prefix on each backend; its keys are deleted afterwards."""
    if request.param == "embedded":
        client = connect(_settings(request.getfixturevalue("embedded_home")))
    else:
        client = _server_client()
    q = Queue.on(client, prefix=f"enastest-{uuid.uuid4().hex[:12]}")
    yield q
    keys = list(client.scan_iter(match=f"{q.prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def S(search_id: int) -> Job:  # noqa: N802 - reads as the job it builds
    return Job.search(search_id)


def R(retrain_id: int) -> Job:  # noqa: N802
    return Job.retrain(retrain_id)


def test_job_encoding_round_trips() -> None:
    assert [encode_job(S(42)), encode_job(R(7))] == ["42", "retrain:7"]
    assert decode_job("42") == S(42) and decode_job("retrain:7") == R(7)
    assert decode_job("retrain:x") is None and decode_job("not-an-id") is None and decode_job("-1") is None
    assert str(S(42)) == "search 42" and str(R(7)) == "retrain 7"


def test_push_take_ack_is_fifo_and_reliable(queue: Queue) -> None:
    jobs = queue.jobs
    assert jobs.push(S(1)) == 1
    assert jobs.push(S(2)) == 2
    assert jobs.depth() == 2 and jobs.waiting() == [S(2), S(1)]  # the next one to be taken last
    assert jobs.take("w1", timeout=0.1) == S(1)
    assert jobs.processing("w1") == [S(1)]
    assert jobs.depth() == 1
    assert jobs.take("w2", timeout=0) == S(2)
    assert jobs.processing("w2") == [S(2)]
    assert jobs.ack("w1", S(1)) is True
    assert jobs.ack("w1", S(1)) is False
    assert jobs.processing("w1") == []
    assert jobs.processing("w2") == [S(2)]  # not acked: stays for a later lease reaper


def test_release_puts_the_job_first_in_line(queue: Queue) -> None:
    jobs = queue.jobs
    jobs.push(S(1))
    jobs.push(S(2))
    assert jobs.take("w", timeout=0) == S(1)
    jobs.release("w", S(1))
    assert jobs.processing("w") == []
    assert jobs.take("w", timeout=0) == S(1)
    assert jobs.take("w", timeout=0) == S(2)


def test_take_times_out_on_empty_queue(queue: Queue) -> None:
    assert queue.jobs.take("w", timeout=0.2) is None
    assert queue.jobs.take("w", timeout=0) is None
    assert queue.jobs.depth() == 0


def test_take_blocks_until_a_push(queue: Queue) -> None:
    got: list[Job | None] = []
    taker = threading.Thread(target=lambda: got.append(queue.jobs.take("w", timeout=5)))
    taker.start()
    queue.jobs.push(S(7))
    taker.join(timeout=10)
    assert got == [S(7)]


def test_malformed_item_is_dropped(queue: Queue) -> None:
    queue.redis.lpush(queue.keys.queue, "not-an-id")
    assert queue.jobs.take("w", timeout=0) is None
    assert queue.jobs.processing("w") == []


def test_retrain_jobs_share_the_queue(queue: Queue) -> None:
    jobs, leases = queue.jobs, queue.leases
    jobs.push(S(3))
    jobs.push(R(8))
    queue.redis.lpush(queue.keys.queue, "retrain:x")  # malformed: dropped
    assert jobs.take("w", timeout=0) == S(3)
    assert jobs.take("w", timeout=0) == R(8) and R(8).kind == "retrain" and R(8).id == 8
    assert jobs.take("w", timeout=0) is None and jobs.processing("w") == [R(8), S(3)]
    assert jobs.present() == {S(3), R(8)}
    assert leases.acquire(R(8), "w", 5) and leases.renew(R(8), "w", 5)
    assert leases.leased([R(8), S(3)]) == {R(8)}
    assert leases.release(R(8), "w")
    jobs.release("w", R(8))
    assert jobs.ack("w", S(3)) and jobs.processing("w") == [] and jobs.depth() == 1
    assert jobs.take("w", timeout=0) == R(8) and jobs.ack("w", R(8))
    assert S(3).kind == "search"


def test_publish_keeps_last_event_with_seq(queue: Queue) -> None:
    events = queue.events
    assert events.last_event(5) is None
    first = events.publish(5, {"type": "epoch", "epoch": 0, "metrics": {"loss": float("nan")}})
    assert first == {"type": "epoch", "epoch": 0, "metrics": {"loss": None}, "search_id": 5, "seq": 1}
    events.publish(5, {"type": "epoch", "epoch": 1})
    last = events.last_event(5)
    assert last is not None and last["epoch"] == 1 and last["seq"] == 2
    assert 0 < queue.redis.ttl(queue.keys.last(5)) <= DEFAULT_EVENT_TTL_S
    with pytest.raises(TypeError):
        events.publish(5, {"type": "epoch", "bad": object()})


def test_subscribe_replays_last_then_follows_until_finished(queue: Queue) -> None:
    queue.events.publish(9, {"type": "status", "status": "running"})
    events = queue.events.subscribe(9, heartbeat=0.2)
    assert next(events)["type"] == "status"  # replay; the subscription is live from here on
    queue.events.publish(9, {"type": "epoch", "epoch": 0})
    assert next(events)["epoch"] == 0
    assert next(events) == {"type": "heartbeat"}
    queue.events.publish(9, {"type": FINISHED, "status": "succeeded"})
    assert next(events)["status"] == "succeeded"
    assert list(events) == []


def test_subscribe_after_finish_yields_only_the_last_event(queue: Queue) -> None:
    queue.events.publish(4, {"type": FINISHED, "status": "failed", "error": "boom"})
    assert [e["error"] for e in queue.events.subscribe(4)] == ["boom"]


def test_follow_ends_when_stopped_and_skips_seen_events(queue: Queue) -> None:
    stop = threading.Event()
    with queue.events.open(2) as subscription:
        queue.events.publish(2, {"type": "epoch", "epoch": 0})
        queue.events.publish(2, {"type": "epoch", "epoch": 1})
        followed = subscription.follow(1, heartbeat_s=0.1, tick_s=0.05, stop=stop)
        assert next(followed)["epoch"] == 1  # seq 1 was seen already
        assert next(followed) == {"type": HEARTBEAT}
        stop.set()
        assert list(followed) == []


def test_listeners_see_each_event_first(queue: Queue) -> None:
    seen: list[dict[str, object]] = []
    events = queue.events.with_listener(seen.append)
    sent = events.publish(3, {"type": "epoch", "epoch": 0})
    assert seen == [{"type": "epoch", "epoch": 0}] and queue.events.last_event(3) == sent


def test_cancel_flag_and_push_clears_it(queue: Queue) -> None:
    cancels = queue.cancels
    assert cancels.requested(3) is False
    cancels.request(3)
    cancels.request(3)
    assert cancels.requested(3) is True
    queue.jobs.push(R(3))  # a retrain job leaves the search's flag alone
    assert cancels.requested(3) is True
    queue.jobs.push(S(3))
    assert cancels.requested(3) is False


def test_lease_is_exclusive_renewable_and_released(queue: Queue) -> None:
    leases = queue.leases
    assert leases.acquire(S(5), "a", ttl_s=5) is True
    assert leases.acquire(S(5), "a", ttl_s=5) is True  # its own: renewed
    assert leases.acquire(S(5), "b", ttl_s=5) is False
    assert leases.acquire(R(5), "b", ttl_s=5) is True  # another job
    assert leases.holder(S(5)) == "a"
    assert leases.renew(S(5), "a", ttl_s=5) is True
    assert leases.renew(S(5), "b", ttl_s=5) is False
    assert leases.release(S(5), "b") is False and leases.holder(S(5)) == "a"
    assert leases.release(S(5), "a") is True and leases.holder(S(5)) is None
    assert leases.acquire(S(5), "b", ttl_s=0.05) is True
    assert _eventually(lambda: leases.holder(S(5)) is None)  # expired
    assert leases.acquire(S(5), "a", ttl_s=5) is True


def test_renew_restores_what_redis_lost(queue: Queue) -> None:
    jobs, leases = queue.jobs, queue.leases
    jobs.push(S(6))
    assert jobs.take("a", timeout=0) == S(6) and leases.acquire(S(6), "a", ttl_s=5)
    queue.redis.delete(queue.keys.lease("6"), queue.keys.processing("a"))  # a restart without persistence
    assert leases.renew(S(6), "a", ttl_s=5) is True
    assert leases.holder(S(6)) == "a" and jobs.processing("a") == [S(6)]
    assert leases.renew(S(6), "a", ttl_s=5) is True and jobs.processing("a") == [S(6)]  # not twice


def test_reaper_requeues_only_dead_workers_jobs(queue: Queue) -> None:
    jobs, leases, workers = queue.jobs, queue.leases, queue.workers
    for search_id in (1, 2, 3):
        jobs.push(S(search_id))
    workers.register("dead", ttl_s=0.05)
    workers.register("alive", ttl_s=5)
    assert jobs.take("dead", timeout=0) == S(1) and leases.acquire(S(1), "dead", ttl_s=0.05)
    assert jobs.take("dead", timeout=0) == S(2)  # taken, lease never acquired (died in between)
    assert jobs.take("alive", timeout=0) == S(3) and leases.acquire(S(3), "alive", ttl_s=5)
    assert jobs.reap() == []  # everybody's key is still alive
    assert _eventually(lambda: not workers.alive("dead") and leases.holder(S(1)) is None)
    assert sorted(jobs.reap()) == [S(1), S(2)]
    assert jobs.processing("dead") == [] and jobs.processing("alive") == [S(3)]
    assert workers.ids() == ["alive"]  # the dead worker is forgotten once its list is empty
    assert sorted([jobs.take("b", timeout=0), jobs.take("b", timeout=0)]) == [S(1), S(2)]
    assert jobs.present() == {S(1), S(2), S(3)} and leases.leased([S(1), S(2), S(3)]) == {S(3)}


def test_reaper_drops_a_copy_another_worker_leases(queue: Queue) -> None:
    queue.workers.register("dead", ttl_s=0.05)
    queue.redis.lpush(queue.keys.processing("dead"), 4)
    assert queue.leases.acquire(S(4), "other", ttl_s=5)
    assert _eventually(lambda: not queue.workers.alive("dead"))
    assert queue.jobs.reap() == [] and queue.jobs.processing("dead") == [] and queue.jobs.depth() == 0


def test_requeue_keeps_the_cancel_flag_and_lock_is_exclusive(queue: Queue) -> None:
    queue.cancels.request(8)
    queue.jobs.requeue(S(8))
    assert queue.cancels.requested(8) and queue.jobs.take("w", timeout=0) == S(8)
    assert queue.leases.try_lock("reconcile", "a", ttl_s=5) is True
    assert queue.leases.try_lock("reconcile", "b", ttl_s=5) is False
    assert queue.leases.try_lock("reconcile", "a", ttl_s=5) is True  # its own: extended


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
from service.queue import Job, Queue
from service.queue.connection import connect
client = connect(SimpleNamespace(home=Path(sys.argv[1]), redis_url=None))
Queue.on(client, prefix=sys.argv[2]).jobs.push(Job.search(int(sys.argv[3])))
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
        q = Queue.on(redis.Redis.from_url(url, decode_responses=True), prefix="shared").jobs
        taken = [q.take("w", timeout=0) for _ in range(3)]
        assert sorted(j.id for j in taken if j is not None) == [1, 2, 3]  # reloaded from redis.db
        assert _run_children(home, "shared", [4]) == [handle.pid]  # attaches to the running server
        assert q.take("w", timeout=0) == Job.search(4)
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
