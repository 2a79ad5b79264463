"""One search end to end over real HTTP -> Redis -> worker -> Ray -> database."""

from __future__ import annotations

import json
import os
import uuid

import psycopg
import pytest
import redis

from service.cli.client import EnasClient

pytestmark = pytest.mark.e2e

TINY = {
    "space": "micro",
    "dataset": "digits",
    "epochs": 2,
    "seed": 0,
    "controller": {"steps_per_epoch": 3, "archs_per_step": 4},
    "derive": {"num_samples": 4, "top_k": 2},
    "retrain": {"epochs": 1},
}

PG_ADMIN = os.environ.get("ENAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ENAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def run_tiny_search(stack) -> tuple[dict, dict]:
    with EnasClient(stack.url) as client:
        client.wait_ready(timeout=120)
        search = client.submit(TINY)
        assert search["status"] == "queued"
        final = client.wait(search["id"], timeout=600)
        assert final["status"] == "succeeded", (final.get("error"), stack.log()[-3000:])
        archs = client.architectures(search["id"], phase="sample", limit=500)
        return final, archs


def test_embedded_defaults(start_stack) -> None:
    stack = start_stack()
    final, archs = run_tiny_search(stack)
    assert final["epoch"] == 1 and final["progress"] == pytest.approx(1.0)
    # 2 epochs x 3 controller steps x 4 architectures, each with its reward
    assert len(archs["items"]) == 24
    assert all(0.0 <= a["reward"] <= 1.0 for a in archs["items"])
    assert {a["epoch"] for a in archs["items"]} == {0, 1}

    status = stack.run("status", str(final["id"]), "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["search"]["status"] == "succeeded"
    assert body["derived"]["items"] and body["retrains"]["items"][0]["test_score"] is not None

    listing = stack.run("list", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout)["items"][0]["id"] == final["id"]


def test_bad_spec_is_rejected_with_exit_2(start_stack, tmp_path) -> None:
    stack = start_stack()
    EnasClient(stack.url).wait_ready(timeout=120)
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"space": "micro", "dataset": "digits", "child": {"foo": 1}}))
    result = stack.run("submit", str(spec))
    assert result.returncode == 2
    assert "child.foo" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("space: [micro\n")
    result = stack.run("submit", str(broken))
    assert result.returncode == 2 and "broken.yaml" in result.stderr


@pytest.fixture
def postgres_database():
    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL server at {admin}: {e}")
    name = f"enas_e2e_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def redis_server_db():
    url = REDIS_URL.rsplit("/", 1)[0] + "/13"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
    except redis.ConnectionError as e:
        pytest.skip(f"no Redis server at {url}: {e}")
    for key in client.scan_iter("enas:*"):
        client.delete(key)
    yield url
    for key in client.scan_iter("enas:*"):
        client.delete(key)


def test_real_servers(start_stack, postgres_database, redis_server_db) -> None:
    stack = start_stack(ENAS_DATABASE_URL=postgres_database, ENAS_REDIS_URL=redis_server_db)
    final, archs = run_tiny_search(stack)
    assert len(archs["items"]) == 24
    with psycopg.connect(postgres_database.replace("+psycopg", "")) as conn:
        count = conn.execute("SELECT count(*) FROM architectures WHERE phase = 'sample'").fetchone()
        assert count is not None and count[0] == 24
