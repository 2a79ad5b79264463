"""Redis and PostgreSQL going away under a running search, with real processes.

- the embedded Redis of ENAS_HOME restarted mid-search (a graceful restart: SHUTDOWN SAVE, start);
- a PostgreSQL the test started itself (``initdb``, its own port) stopped for a while mid-search,
  the API answering 503 meanwhile, then a redis-server the test started itself killed and started
  again empty mid-search: the running search and the one queued behind it both complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.queue import Job, Queue
from service.queue.connection import connect, socket_path, start_embedded
from service.settings import Settings
from service.store import Store
from service.store.db import upgrade
from tests.faults.conftest import (
    PostgresServer,
    Proc,
    RedisServer,
    assert_complete,
    fault_spec,
    search_rows,
    wait_for,
)

pytestmark = pytest.mark.faults

Spawn = Callable[..., Proc]


def test_embedded_redis_restart_mid_search(spawn: Spawn, tmp_path: Path) -> None:
    home = tmp_path / "home"
    handle, _ = start_embedded(home)
    url = f"sqlite:///{home / 'enas.db'}"
    upgrade(url)
    store = Store(url)
    client = connect(Settings(home=home))
    try:
        spec = fault_spec(epochs=6)
        search = store.create_search(spec=spec)
        Queue.on(client).jobs.push(Job.search(search.id))
        worker = spawn("worker", "worker", "--worker-id", "w1", env={"ENAS_HOME": str(home)})
        wait_for(lambda: store.get_search(search_id=search.id).epoch == 0, 120, "epoch 0", procs=(worker,))

        server = redis.Redis(unix_socket_path=str(socket_path(home)))
        with contextlib.suppress(redis.ConnectionError):  # the server closes it as it exits
            server.shutdown(save=True)
        server.close()
        wait_for(lambda: not socket_path(home).exists(), 30, "the server to exit")
        start_embedded(home)  # the same files: the queue, leases and processing lists are back

        done = lambda: store.get_search(search_id=search.id).is_terminal  # noqa: E731
        wait_for(done, 120, "the search", procs=(worker,))
        assert_complete(store, search.id, spec)
        # Redis went away mid-search and the worker noticed, then got it back (the search may finish
        # before or after the heartbeat is restored: both are fine, nothing may be lost either way)
        wait_for(lambda: "heartbeat restored" in worker.log(), 30, "the heartbeat restored", procs=(worker,))
        assert "heartbeat failed" in worker.log() or "not published" in worker.log()
        assert worker.popen.poll() is None
        # a job put back while Redis was away is taken again, found finished, and acked
        queue = Queue.on(client)
        wait_for(
            lambda: queue.jobs.processing("w1") == [] and queue.jobs.depth() == 0,
            30,
            "the job acked",
            procs=(worker,),
        )
    finally:
        client.close()
        store.dispose()
        handle.shutdown()


def _api_status(api: TestClient, path: str) -> tuple[int, dict[str, object]]:
    response = api.get(path)
    return response.status_code, response.json()


def test_postgres_outage_then_redis_loss_mid_search(
    spawn: Spawn, tmp_path: Path, postgres: PostgresServer, redis_server: RedisServer
) -> None:
    upgrade(postgres.url)
    store = Store(postgres.url)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    settings = Settings(home=tmp_path / "api", database_url=postgres.url, redis_url=redis_server.url)
    try:
        # enough epochs left after epoch 1 to outlast the lease TTL (2 s): while Redis is down the
        # run must pause at a batch boundary, so the search cannot finish during the outage
        spec = fault_spec(epochs=12)
        running, waiting = store.create_search(spec=spec), store.create_search(spec=spec)
        for search in (running, waiting):
            Queue.on(client).jobs.push(Job.search(search.id))
        env = {
            "ENAS_HOME": str(tmp_path / "home"),
            "ENAS_DATABASE_URL": postgres.url,
            "ENAS_REDIS_URL": redis_server.url,
        }
        worker = spawn("worker", "worker", "--worker-id", "w1", env=env)
        with TestClient(create_app(settings), base_url="http://localhost") as api:  # a trusted Host
            wait_for(
                lambda: store.get_search(search_id=running.id).epoch == 0, 120, "epoch 0", procs=(worker,)
            )
            postgres.stop()  # for a while: the worker retries, the API answers 503
            status, body = _api_status(api, f"/searches/{running.id}")
            assert status == 503 and body["error"]["code"] == "unavailable"  # type: ignore[index]
            status, body = _api_status(api, "/readyz")
            assert status == 503 and body["error"]["field"] == "database"  # type: ignore[index]
            retrying = lambda: "record epoch 1 failed" in worker.log()  # noqa: E731
            wait_for(retrying, 60, "the worker to retry the database", procs=(worker,))
            postgres.start()
            assert api.get("/readyz").status_code == 200

            wait_for(
                lambda: store.get_search(search_id=running.id).epoch == 1, 60, "epoch 1", procs=(worker,)
            )
            redis_server.kill()  # a crash without persistence: the queued search's id is gone
            status, body = _api_status(api, "/readyz")
            assert status == 503 and body["error"]["field"] == "redis"  # type: ignore[index]
            wait_for(lambda: "heartbeat failed" in worker.log(), 30, "the worker to notice", procs=(worker,))
            redis_server.start()
            assert not store.get_search(search_id=running.id).is_terminal  # Redis came back mid-search
        for search in (running, waiting):
            done = lambda s=search: store.get_search(search_id=s.id).is_terminal  # noqa: E731
            wait_for(done, 180, f"search {search.id}", procs=(worker,))
        assert_complete(store, running.id, spec)
        assert_complete(store, waiting.id, spec)
        assert search_rows(store, running.id) == search_rows(store, waiting.id)
        log = worker.log()
        assert "queued again" in log and worker.popen.poll() is None  # the reconciler restored it
    finally:
        client.close()
        store.dispose()
