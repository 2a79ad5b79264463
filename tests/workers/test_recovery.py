"""Actor loss (workers/recovery.py): the shared actor killed mid-search, then its replacement
killed before it ever ran; the search goes on on fresh actors from the newest checkpoint and its
rows equal an uninterrupted run's. Past ENAS_ACTOR_RECOVERIES losses in a row the search fails,
naming the loss."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import ray

from service.queue import Queue
from service.queue.cancel import CancelFlags
from service.settings import Settings
from service.store import Store
from tests.workers.test_resume import RESUME_OVERRIDES, learning_metrics, search_rows
from workers.recovery import is_actor_loss
from workers.runner import run_search

pytestmark = pytest.mark.usefixtures("ray_session")

Spec = Callable[..., dict[str, Any]]


def shared_actors(search_id: int) -> set[str]:
    """Names of the search's live shared-model actors."""
    prefix = f"search-{search_id}-shared-"
    return {n for n in ray.util.list_named_actors() if n.startswith(prefix)}


def kill_named(name: str) -> None:
    try:
        ray.kill(ray.get_actor(name), no_restart=True)
    except ValueError:
        pass  # gone already


class KillSharedInEpoch(CancelFlags):
    """Cancel flags whose first check in epoch ``epoch`` (the search's committed epoch is
    ``epoch - 1``) kills the search's shared actor: a node loss in the middle of that epoch,
    with work of it already done in the actors. ``every``: kill at every such check."""

    def __init__(self, base: Queue, store: Store, search_id: int, epoch: int, every: bool = False) -> None:
        super().__init__(base.redis, base.keys)
        self.store, self.search_id, self.epoch, self.every = store, search_id, epoch, every
        self.kills = 0

    def requested(self, search_id: int) -> bool:
        committed = self.store.get_search(search_id=self.search_id).epoch
        if (committed if committed is not None else -1) == self.epoch - 1 and (self.every or not self.kills):
            self.kills += 1
            for name in shared_actors(self.search_id):
                kill_named(name)
        return super().requested(search_id)


def kill_next_shared(search_id: int, seen: set[str]) -> threading.Thread:
    """Kill the next shared actor of the search as soon as it exists (before it ever ran)."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            fresh = shared_actors(search_id) - seen
            if fresh:
                for name in fresh:
                    kill_named(name)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_search_survives_losing_its_actors(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    spec = tiny_spec(**RESUME_OVERRIDES)
    reference = store.create_search(spec=spec)
    assert run_search(reference.id, store=store, queue=queue, settings=settings).status == "succeeded"

    lossy = store.create_search(spec=spec)
    events: list[dict[str, Any]] = []
    killers: list[threading.Thread] = []

    def on_event(event: dict[str, Any]) -> None:
        events.append(event)
        if event.get("type") == "recovery" and event["attempt"] == 1:
            killers.append(kill_next_shared(lossy.id, shared_actors(lossy.id)))

    killing = dataclasses.replace(
        queue,
        cancels=KillSharedInEpoch(queue, store, lossy.id, epoch=1),
        events=queue.events.with_listener(on_event),
    )
    final = run_search(lossy.id, store=store, queue=killing, settings=settings)
    assert final.status == "succeeded", final.error
    recoveries = [e for e in events if e["type"] == "recovery"]
    assert [(e["attempt"], e["epoch"]) for e in recoveries] == [(1, 0), (2, 0)], recoveries
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [0, 1]  # each epoch stored once
    assert search_rows(store, lossy.id) == search_rows(store, reference.id)
    assert learning_metrics(store, lossy.id) == learning_metrics(store, reference.id)
    assert [d.score for d in store.list_derived(search_id=lossy.id)] == [
        d.score for d in store.list_derived(search_id=reference.id)
    ]
    assert not shared_actors(lossy.id)  # nothing left behind


def test_too_many_losses_in_a_row_fail_the_search_naming_them(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec
) -> None:
    settings = settings.model_copy(update={"actor_recoveries": 1})
    search = store.create_search(spec=tiny_spec(**RESUME_OVERRIDES))
    killing = dataclasses.replace(
        queue, cancels=KillSharedInEpoch(queue, store, search.id, epoch=0, every=True)
    )
    final = run_search(search.id, store=store, queue=killing, settings=settings)
    assert final.status == "failed"
    assert final.error and "lost 2 times in a row" in final.error and "ENAS_ACTOR_RECOVERIES=1" in final.error
    assert final.epoch is None


def test_actor_loss_is_recognised_through_task_errors() -> None:
    died = ray.exceptions.ActorDiedError()
    assert is_actor_loss(died) and is_actor_loss(ray.exceptions.ActorUnavailableError("gone", None))
    wrapped = RuntimeError("controller step failed")
    wrapped.__cause__ = died
    assert is_actor_loss(wrapped)
    assert not is_actor_loss(RuntimeError("a bug"))
    assert not is_actor_loss(ray.exceptions.RayActorError(actor_init_failed=True))  # its __init__ raised
