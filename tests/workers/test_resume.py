"""Exact resume: a search interrupted mid-epoch (worker stop) or cancelled and resumed from its
checkpoint stores exactly the rows of an uninterrupted run with the same seed (CPU)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enas_core.epoch import TIMING_METRICS
from service.queue import Queue
from service.queue.cancel import CancelFlags
from service.settings import Settings
from service.store import Store
from service.store.records import SearchRecord
from workers.runner import SearchInterrupted, run_search

pytestmark = pytest.mark.usefixtures("ray_session")

Spec = Callable[..., dict[str, Any]]
RESUME_OVERRIDES: dict[str, Any] = {"epochs": 2, "retrain": {"enabled": False}}


def search_rows(store: Store, search_id: int) -> list[tuple[Any, ...]]:
    """Every architecture row of a search in a comparable form (exact floats)."""
    items, _ = store.list_architectures(search_id=search_id, limit=1000)
    return [
        (
            a.epoch,
            a.phase,
            a.index,
            tuple(a.tokens),
            a.hash,
            a.reward,
            a.loss,
            a.accuracy,
            a.entropy,
            a.log_prob,
        )
        for a in items
    ]


def learning_metrics(store: Store, search_id: int) -> list[dict[str, Any]]:
    """The epochs' metrics without the timing ones."""
    return [
        {k: v for k, v in e.metrics.items() if k not in TIMING_METRICS}
        for e in store.list_epochs(search_id=search_id)
    ]


class StopAfterChecks(CancelFlags):
    """Cancel flags whose check sets the worker's stop event after ``after`` checks past epoch 0:
    the run stops in the middle of epoch 1 with work of that epoch already done in the actors."""

    def __init__(self, base: Queue, store: Store, search_id: int, stop: threading.Event, after: int) -> None:
        super().__init__(base.redis, base.keys)
        self.store, self.search_id, self.stop, self.left = store, search_id, stop, after

    def requested(self, search_id: int) -> bool:
        if self.store.get_search(search_id=self.search_id).epoch == 0:
            self.left -= 1
            if self.left < 0:
                self.stop.set()
        return super().requested(search_id)


def reference_and_interrupted(
    store: Store, queue: Queue, settings: Settings, spec: dict[str, Any]
) -> tuple[SearchRecord, SearchRecord]:
    """Two searches of ``spec``: one run to the end, one whose worker is stopped after epoch 1's
    shared phase, before its controller phase (left ``running`` at epoch 0 with its checkpoint)."""
    reference = store.create_search(spec=spec)
    assert run_search(reference.id, store=store, queue=queue, settings=settings).status == "succeeded"
    interrupted = store.create_search(spec=spec)
    stop = threading.Event()
    stopping = dataclasses.replace(
        queue, cancels=StopAfterChecks(queue, store, interrupted.id, stop, after=0)
    )
    with pytest.raises(SearchInterrupted):
        run_search(interrupted.id, store=store, queue=stopping, settings=settings, stop_event=stop)
    return reference, interrupted


class Recording:
    """A queue that keeps the events it publishes (``Recording(queue).queue``)."""

    def __init__(self, base: Queue) -> None:
        self.events: list[dict[str, Any]] = []
        self.queue = dataclasses.replace(base, events=base.events.with_listener(self.events.append))


class CancelInEpoch(Store):
    """A store on which the API asks to cancel while epoch 0 is being recorded."""

    def record_epoch(self, **kwargs: Any) -> Any:
        if kwargs["epoch"] == 0:
            self.request_cancel(search_id=kwargs["search_id"])
        return super().record_epoch(**kwargs)


def test_interrupted_and_cancelled_searches_resume_exactly(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    settings = settings.model_copy(update={"checkpoint_keep": 1})
    spec = tiny_spec(**RESUME_OVERRIDES)
    reference, interrupted = reference_and_interrupted(store, queue, settings, spec)
    paused = store.get_search(search_id=interrupted.id)
    assert (paused.status, paused.epoch) == ("running", 0)
    assert paused.checkpoint_uri and paused.checkpoint_uri.endswith(f"/{interrupted.id}/ckpt-0.pt")
    recording = Recording(queue)
    resumed = run_search(interrupted.id, store=store, queue=recording.queue, settings=settings)
    assert resumed.status == "succeeded" and resumed.fencing_token == 2
    assert {
        "type": "status",
        "status": "resumed",
        "epoch": 0,
        "checkpoint": paused.checkpoint_uri,
    } in recording.events
    assert [e["epoch"] for e in recording.events if e["type"] == "epoch"] == [1]  # epoch 0 not run again

    cancelling = CancelInEpoch(store.url)
    cancelled = cancelling.create_search(spec=spec)
    assert run_search(cancelled.id, store=cancelling, queue=queue, settings=settings).status == "cancelled"
    cancelling.dispose()
    kept = store.get_search(search_id=cancelled.id)
    assert kept.epoch == 0 and kept.checkpoint_uri and Path(kept.checkpoint_uri).exists()  # checkpoint kept
    store.requeue_search(search_id=cancelled.id)
    assert run_search(cancelled.id, store=store, queue=queue, settings=settings).status == "succeeded"

    expected = search_rows(store, reference.id)
    assert len(expected) == 2 * (3 + 2 * 3) + len(store.list_derived(search_id=reference.id))
    for other in (interrupted.id, cancelled.id):
        assert search_rows(store, other) == expected  # row by row: tokens, rewards, losses, exact floats
        assert learning_metrics(store, other) == learning_metrics(store, reference.id)
        assert [d.score for d in store.list_derived(search_id=other)] == [
            d.score for d in store.list_derived(search_id=reference.id)
        ]
    ckpts = sorted(p.name for p in (Path(str(settings.artifact_dir)) / str(reference.id)).iterdir())
    assert ckpts == ["ckpt-1.pt"]  # older ones pruned (checkpoint_keep=1)
