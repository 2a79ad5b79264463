"""Searches run end to end by the worker: real SQLite store, embedded Redis, local Ray."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.queue import FINISHED, Job, Queue
from service.settings import Settings
from service.store import Store
from workers.runner import run_search
from workers.worker import handle_job, run_worker

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]

Spec = Callable[..., dict[str, Any]]


def test_tiny_search_succeeds_with_every_record(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search = store.create_search(spec=tiny_spec())
    queue.jobs.push(Job.search(search.id))
    events: list[dict[str, Any]] = []
    follower = threading.Thread(target=lambda: events.extend(queue.events.subscribe(search.id)), daemon=True)
    follower.start()

    assert run_worker(settings, burst=True, worker_id="w1", queue_prefix=queue.prefix) == 1

    final = store.get_search(search_id=search.id)
    assert final.status == "succeeded", (final.error, final.error_traceback)
    assert final.progress == pytest.approx(1.0) and final.epoch == 1
    assert queue.jobs.depth() == 0 and queue.jobs.processing("w1") == []
    epochs = store.list_epochs(search_id=search.id)
    assert [e.epoch for e in epochs] == [0, 1]
    for key in (
        "shared_loss",
        "shared_accuracy",
        "reward_mean",
        "reward_max",
        "baseline",
        "entropy",
        "controller_loss",
        "lr",
        "images_per_s",
        "archs_per_s",
        "duration_s",
    ):
        assert isinstance(epochs[-1].metrics[key], float), key

    samples, _ = store.list_architectures(search_id=search.id, phase="sample", limit=100)
    assert len(samples) == 2 * 2 * 3  # epochs x controller steps x archs per step
    assert all(0.0 <= a.reward <= 1.0 and a.entropy is not None and a.log_prob is not None for a in samples)
    assert all(a.genotype and a.genotype["space"] == "micro" and len(a.hash) == 16 for a in samples)
    trained, _ = store.list_architectures(search_id=search.id, phase="train", limit=100)
    assert len(trained) == 2 * 3 and all(a.loss is not None and a.accuracy is not None for a in trained)

    derived = store.list_derived(search_id=search.id)
    assert 1 <= len(derived) <= 2 and [d.rank for d in derived] == list(range(1, len(derived) + 1))
    (retrain,) = store.list_retrains(search_id=search.id)
    assert retrain.status == "succeeded" and retrain.architecture_id == derived[0].architecture_id
    assert retrain.test_score is not None and 0.0 <= retrain.test_score <= 1.0
    assert retrain.params and retrain.params > 0
    assert retrain.metrics is not None and len(retrain.metrics["curve"]) == 1

    follower.join(timeout=30)
    assert [e["type"] for e in events if e["type"] != "phase"] == [
        "status",
        "epoch",
        "epoch",
        "derived",
        "retrained",
        FINISHED,
    ]
    phases = [(e["phase"], e["epoch"]) for e in events if e["type"] == "phase"]
    assert phases == [
        ("shared", 0),
        ("controller", 0),
        ("shared", 1),
        ("controller", 1),
        ("derive", 1),
        ("retrain", 1),
    ]
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [0, 1]
    first = next(e for e in events if e["type"] == "epoch")
    assert first["total"] == 2 and first["metrics"] == epochs[0].metrics
    assert events[-1]["status"] == "succeeded" and [e["seq"] for e in events] == list(
        range(1, len(events) + 1)
    )


def test_search_whose_data_is_missing_fails_with_the_error(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec, tmp_path: Any
) -> None:
    missing = tmp_path / "no-such-folder"
    search = store.create_search(spec=tiny_spec(dataset="cifar10", data_dir=str(missing)))
    queue.jobs.push(Job.search(search.id))

    assert run_worker(settings, burst=True, worker_id="w2", queue_prefix=queue.prefix) == 1

    final = store.get_search(search_id=search.id)
    print(final.error)
    assert final.status == "failed"
    assert final.error and "no-such-folder" in final.error and "DatasetError" in final.error
    assert final.error_traceback
    assert queue.jobs.processing("w2") == []
    last = queue.events.last_event(search.id)
    assert last is not None and last["status"] == "failed" and last["error"] == final.error


def test_finished_search_is_skipped(store: Store, queue: Queue, settings: Settings, tiny_spec: Spec) -> None:
    search = store.create_search(spec=tiny_spec())
    store.finish_search(search_id=search.id, status="failed", error="earlier")
    queue.jobs.push(Job.search(search.id))
    queue.jobs.push(Job.search(10_000_000))  # unknown id

    assert run_worker(settings, burst=True, worker_id="w3", queue_prefix=queue.prefix) == 2

    assert store.get_search(search_id=search.id).error == "earlier"
    assert queue.jobs.depth() == 0 and queue.jobs.processing("w3") == []


def test_cancel_flag_ends_the_search_cancelled(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search = store.create_search(spec=tiny_spec())
    queue.cancels.request(search.id)  # as the API does for a running search

    final = run_search(search.id, store=store, queue=queue, settings=settings, worker_id="w4")

    assert final.status == "cancelled" and final.error is None
    assert store.list_epochs(search_id=search.id) == []


def test_worker_stop_puts_the_search_back(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search = store.create_search(spec=tiny_spec())
    queue.jobs.push(Job.search(search.id))
    assert queue.jobs.take("w5", timeout=0) == Job.search(search.id)
    stop = threading.Event()
    stop.set()

    handle_job(
        Job.search(search.id), store=store, queue=queue, settings=settings, worker_id="w5", stop_event=stop
    )

    assert store.get_search(search_id=search.id).status == "running"  # re-claimed by the next worker
    assert queue.jobs.processing("w5") == [] and queue.jobs.take("w6", timeout=0) == Job.search(search.id)


def test_stop_event_ends_an_idle_worker(queue: Queue, settings: Settings, store: Store) -> None:
    stop = threading.Event()
    handled: list[int] = []
    worker = threading.Thread(
        target=lambda: handled.append(
            run_worker(settings, worker_id="w7", stop_event=stop, queue_prefix=queue.prefix, poll_s=0.1)
        )
    )
    worker.start()
    stop.set()
    worker.join(timeout=30)
    assert handled == [0]


_WORKER = """
import logging
import sys
from service.settings import Settings
from workers.worker import run_worker
logging.basicConfig(level=logging.INFO)
settings = Settings(home=sys.argv[1], database_url=sys.argv[2], redis_url=None)
sys.exit(run_worker(settings, worker_id="sig", queue_prefix=sys.argv[3], poll_s=0.2))
"""


def test_sigterm_stops_the_worker_cleanly(queue: Queue, settings: Settings, store: Store) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(settings.home), settings.db_url, queue.prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(c.get("cmd") == "blmove" for c in queue.redis.client_list()):  # in its loop
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err  # exit status = jobs handled
    assert "SIGTERM received" in err and "stopped after 0 job(s)" in err


class _ClaimedMeanwhile(Store):
    """A store on which another worker re-claims the search right after this worker did."""

    def mark_running(self, *, search_id: int, worker_id: str | None = None) -> Any:
        mine = super().mark_running(search_id=search_id, worker_id=worker_id)
        super().mark_running(search_id=search_id, worker_id="other")
        return mine


def test_fenced_out_worker_leaves_the_search_to_the_new_owner(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    search = store.create_search(spec=tiny_spec())
    queue.cancels.request(search.id)  # ends the run at once, so it tries to finish the search
    stale = _ClaimedMeanwhile(store.url)

    final = run_search(search.id, store=stale, queue=queue, settings=settings, worker_id="w8")
    stale.dispose()

    assert final.status == "running" and final.lease_owner == "other"
    last = queue.events.last_event(search.id)
    assert last is not None and last["type"] == "status"  # no "finished" event from the stale worker
