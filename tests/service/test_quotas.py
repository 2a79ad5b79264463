"""Quotas per owner over real HTTP (service/quotas.py): searches queued or running at once, and the
estimated cost submitted in 24 hours; over one: 429 naming the limit, with Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from service import cost
from service.api.app import create_app
from service.settings import Settings
from service.spec import SearchSpec, resolve_spec
from service.store import Store

ALICE = {"Authorization": "Bearer tok-a"}
BOB = {"Authorization": "Bearer tok-b"}
BODY = {"space": "micro", "epochs": 1}


@contextmanager
def quota_api(embedded_home: Path, tmp_path: Path, serve: Any, **quotas: Any) -> Iterator[httpx.Client]:
    settings = Settings(home=tmp_path, redis_url=None, auth_tokens="alice:tok-a,bob:tok-b", **quotas)
    settings.home = embedded_home  # share the module's embedded Redis
    settings.database_url = f"sqlite:///{tmp_path / 'quotas.db'}"
    prefix = f"quota{uuid.uuid4().hex[:8]}"
    with serve(create_app(settings, queue_prefix=prefix)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            yield http
        queue = server.app.state.queue
        for key in queue.redis.scan_iter(f"{prefix}*"):
            queue.redis.delete(key)


def test_active_searches_quota(embedded_home: Path, tmp_path: Path, serve: Any) -> None:
    with quota_api(embedded_home, tmp_path, serve, quota_active=2) as http:
        first = http.post("/searches", json=BODY, headers=ALICE).json()["id"]
        assert http.post("/searches", json=BODY, headers=ALICE).status_code == 201
        over = http.post("/searches", json=BODY, headers=ALICE)
        assert over.status_code == 429 and over.headers["retry-after"] == "60"
        error = over.json()["error"]
        assert error["code"] == "over_quota" and "ENAS_QUOTA_ACTIVE = 2" in error["message"]
        assert http.post("/searches", json=BODY, headers=BOB).status_code == 201  # per owner
        assert http.post(f"/searches/{first}/cancel", headers=ALICE).json()["status"] == "cancelled"
        assert http.post("/searches", json=BODY, headers=ALICE).status_code == 201  # one freed


def test_daily_cost_quota(embedded_home: Path, tmp_path: Path, serve: Any) -> None:
    one = cost.estimate(resolve_spec(SearchSpec(space="micro", epochs=1)))["macs"]
    with quota_api(embedded_home, tmp_path, serve, quota_daily_cost=2.5 * one) as http:
        assert http.post("/searches", json=BODY, headers=ALICE).status_code == 201
        assert http.post("/searches", json=BODY, headers=ALICE).status_code == 201
        over = http.post("/searches", json=BODY, headers=ALICE)
        assert over.status_code == 429
        assert 86_000 < int(over.headers["retry-after"]) <= 86_400  # when the first leaves the window
        assert "ENAS_QUOTA_DAILY_COST" in over.json()["error"]["message"]
        assert http.post("/searches", json=BODY, headers=BOB).status_code == 201
        alone = http.post("/searches", json={**BODY, "epochs": 10}, headers=BOB)
        assert alone.status_code == 422 and alone.json()["error"]["field"] == "cost"
        assert "ENAS_QUOTA_DAILY_COST" in alone.json()["error"]["message"]


def test_owner_usage_reads_active_searches_and_recent_costs(store: Store) -> None:
    def submit(owner: str, macs: float | None) -> int:
        spec = {"space": "micro", "epochs": 1, **({"cost": {"macs": macs}} if macs is not None else {})}
        return store.create_search(spec=spec, owner=owner).id

    start = datetime.now(UTC) - timedelta(seconds=1)
    first = submit("alice", 5.0)
    submit("alice", None)  # a search stored before costs were estimated counts 0
    submit("bob", 7.0)
    store.mark_running(search_id=first)
    active, recent = store.owner_usage(owner="alice", since=start)
    assert active == 2 and [c for _, c in recent] == [5.0, 0.0]
    assert all(created >= start for created, _ in recent)
    store.finish_search(search_id=first, status="succeeded")
    assert store.owner_usage(owner="alice", since=start)[0] == 1
    assert store.owner_usage(owner="alice", since=datetime.now(UTC) + timedelta(hours=1)) == (1, [])
