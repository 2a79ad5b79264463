"""TensorBoard event files of a search (`workers.tensorboard`): written from the published events
when the spec asks (``resources.tensorboard``), read back from the files."""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.queue import Queue
from service.settings import Settings
from service.store import Store
from workers import tensorboard
from workers.runner import run_search


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The worker settings with artifacts of this test's own."""
    return settings.model_copy(update={"artifact_dir": str(tmp_path / "artifacts")})


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from the TFRecord event files in ``folder``."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                scalars[value.tag].append((event.step, value.simple_value))
    return dict(scalars)


def test_no_flag_no_files(settings: Settings, store: Store, queue: Queue) -> None:
    spec = {"resources": {"tensorboard": False}}
    assert tensorboard.follow(queue, spec, settings=settings, store=store, search_id=1) is queue
    remote = settings.model_copy(update={"artifact_dir": "s3://bucket/artifacts"})
    spec = {"resources": {"tensorboard": True}}
    assert tensorboard.follow(queue, spec, settings=remote, store=store, search_id=1) is queue
    assert tensorboard.log_dir("file:///data/art", 3) == Path("/data/art/3/tensorboard")


def test_events_become_scalars(
    settings: Settings, store: Store, queue: Queue, tiny_spec: Callable[..., dict[str, Any]]
) -> None:
    search = store.create_search(spec=tiny_spec(resources={"tensorboard": True}))
    followed = tensorboard.follow(queue, search.spec, settings=settings, store=store, search_id=search.id)
    assert followed is not queue
    for epoch in range(2):
        metrics = {"reward_mean": 0.5 + epoch, "entropy": 3.0, "lr": None, "note": "text"}
        sent = followed.events.publish(
            search.id, {"type": "epoch", "epoch": epoch, "metrics": metrics, "best_reward": 0.9}
        )
        assert sent["seq"] == epoch + 1 and queue.events.last_event(search.id) == sent  # still published
    followed.events.publish(
        search.id, {"type": "derived", "items": [{"rank": 1, "architecture_id": 5, "score": 0.7}]}
    )
    arch = store.record_derived(
        search_id=search.id,
        items=[{"tokens": [0, 1, 0, 1] * 10, "hash": "a" * 16, "genotype": None, "score": 0.7}],
    )[0]
    run = store.create_retrain(search_id=search.id, architecture_id=arch.architecture_id)
    curve = [{"epoch": 0, "valid_accuracy": 0.5, "train_loss": 1.5}, {"epoch": 1, "valid_accuracy": 0.6}]
    store.finish_retrain(retrain_id=run.id, status="succeeded", test_score=0.61, metrics={"curve": curve})
    followed.events.publish(search.id, {"type": "retrained", "items": []})
    followed.events.publish(search.id, {"type": "finished", "status": "succeeded", "error": None})

    scalars = read_scalars(Path(settings.artifact_dir or "") / str(search.id) / "tensorboard")
    assert scalars["search/reward_mean"] == [(0, 0.5), (1, 1.5)]
    assert scalars["search/best_reward"] == [(0, pytest.approx(0.9)), (1, pytest.approx(0.9))]
    assert "search/lr" not in scalars and "search/note" not in scalars
    assert scalars["derive/score"] == [(1, pytest.approx(0.7))]
    tag = f"retrain/{arch.architecture_id}"
    assert scalars[f"{tag}/valid_accuracy"] == [(0, 0.5), (1, pytest.approx(0.6))]
    assert scalars[f"{tag}/test_score"] == [(0, pytest.approx(0.61))]


def test_a_search_that_asks_writes_its_files(
    ray_session: None,
    settings: Settings,
    store: Store,
    queue: Queue,
    tiny_spec: Callable[..., dict[str, Any]],
) -> None:
    search = store.create_search(spec=tiny_spec(resources={"tensorboard": True}, retrain={"enabled": False}))
    final = run_search(search.id, store=store, queue=queue, settings=settings, worker_id="tb")
    assert final.status == "succeeded", final.error
    scalars = read_scalars(Path(settings.artifact_dir or "") / str(search.id) / "tensorboard")
    assert [step for step, _ in scalars["search/reward_mean"]] == [0, 1]
    assert {"search/entropy", "search/shared_loss", "search/baseline", "derive/score"} <= set(scalars)
