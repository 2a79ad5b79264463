"""``GET /metrics``: the Prometheus text exposition, parsed back and checked against the store."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.api.routes.metrics import Family, queue_families, render
from service.settings import Settings
from service.store import Store

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    """Samples ``{(name, labels): value}`` and types ``{family: type}``; fails on a malformed line,
    a sample before its family's TYPE, or a repeated sample."""
    samples: dict[Key, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types and kind in ("gauge", "counter", "summary"), line
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"malformed sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(sum|count)$", "", name) if re.sub(r"_(sum|count)$", "", name) in types else name
        assert family in types, f"sample before its TYPE: {line!r}"
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), f"bad labels: {line!r}"
        key = (name, frozenset(pairs))
        assert key not in samples, f"repeated sample: {line!r}"
        samples[key] = float(value)
    return samples, types


def value(samples: dict[Key, float], metric: str, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


@pytest.fixture(scope="module")
def server(embedded_home: Path, serve: Any) -> Iterator[Any]:
    settings = Settings(home=embedded_home, data_dir=embedded_home / "data")
    settings.database_url = f"sqlite:///{embedded_home / f'metrics-{uuid.uuid4().hex[:8]}.db'}"
    app = create_app(settings, queue_prefix=f"metrics{uuid.uuid4().hex[:8]}")
    with serve(app) as running:
        yield running


def arch(index: int, phase: str, reward: float | None) -> dict[str, Any]:
    tokens = [0, 1, 0, 1] * 10
    return {
        "phase": phase,
        "index": index,
        "tokens": tokens,
        "hash": f"{phase[0]}{index:015x}",
        "reward": reward,
    }


def test_metrics_exposition(server: Any) -> None:
    store: Store = server.app.state.store
    http = httpx.Client(base_url=server.url, timeout=10)
    ids = [http.post("/searches", json={"space": "micro", "epochs": 4}).json()["id"] for _ in range(4)]
    running, done, cancelled, _queued = ids
    store.mark_running(search_id=running)
    for epoch, duration in enumerate((2.0, 4.0)):
        rows = [arch(i, "sample", 0.1 * (i + epoch)) for i in range(3)] + [arch(0, "train", None)]
        metrics_row = {
            "reward_mean": 0.2 + epoch,
            "reward_max": 0.5,
            "entropy": 7.5,
            "baseline": 0.1,
            "archs_per_s": 12.0,
            "duration_s": duration,
        }
        store.record_epoch(
            search_id=running, epoch=epoch, metrics=metrics_row, architectures=rows, duration_s=duration
        )
    store.mark_running(search_id=done)
    store.finish_search(search_id=done, status="succeeded")
    store.request_cancel(search_id=cancelled)

    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse(response.text)

    counts = store.counts_by_status()
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert value(samples, "enas_searches", status=status) == counts.get(status, 0)
    assert value(samples, "enas_queue_depth") == server.app.state.queue.jobs.depth()
    assert value(samples, "enas_redis_up") == 1
    assert types["enas_architectures_sampled_total"] == "counter"
    assert value(samples, "enas_architectures_sampled_total", phase="sample") == 6
    assert value(samples, "enas_architectures_sampled_total", phase="train") == 2
    assert types["enas_epoch_duration_seconds"] == "summary"
    assert value(samples, "enas_epoch_duration_seconds_count") == 2
    assert value(samples, "enas_epoch_duration_seconds_sum") == 6.0
    assert value(samples, "enas_epoch_duration_seconds", quantile="0.5") == 3.0
    labels = {"search_id": str(running), "space": "micro", "dataset": "digits"}
    assert value(samples, "enas_search_progress", **labels) == 0.5
    assert value(samples, "enas_search_epoch", **labels) == 1
    assert value(samples, "enas_search_reward", stat="mean", **labels) == pytest.approx(1.2)
    assert value(samples, "enas_search_reward", stat="max", **labels) == 0.5
    assert value(samples, "enas_search_entropy", **labels) == 7.5
    assert value(samples, "enas_search_architectures_per_second", **labels) == 12.0
    assert value(samples, "enas_search_epoch_duration_seconds", **labels) == 4.0
    assert value(samples, "enas_search_best_reward", **labels) == pytest.approx(0.3)
    assert not any(dict(k[1]).get("search_id") == str(done) for k in samples)  # only running searches
    http.close()


def test_render_escapes_labels_and_help() -> None:
    family = Family("x_total", "counter", 'help with "quotes"\nand a newline')
    family.add(3, {"name": 'a "b"\\c\nd'})
    family.add(None, {"name": "missing"})  # left out
    family.add(float("nan"), {"name": "nan"})
    text = render([family])
    assert text.splitlines()[0] == '# HELP x_total help with "quotes"\\nand a newline'
    samples, _ = parse(text)
    assert value(samples, "x_total", name='a \\"b\\"\\\\c\\nd') == 3 and len(samples) == 2


def test_redis_down_only_drops_the_queue_depth() -> None:
    state = SimpleNamespace(
        queue=None,
        redis=None,
        queue_lock=threading.Lock(),
        queue_prefix="x",
        settings=Settings(redis_url="redis://127.0.0.1:1/0"),
    )
    families = {f.name: f for f in queue_families(state)}
    assert families["enas_redis_up"].samples == [("", {}, 0.0)]
    assert families["enas_queue_depth"].samples == []
