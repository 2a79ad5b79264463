"""Worker test fixtures: one Ray session for the whole test session, a migrated SQLite store and
the embedded Redis under a temp home, a queue with its own key prefix, and tiny resolved specs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.queue import Queue
from service.queue.connection import connect, start_embedded
from service.settings import Settings
from service.spec import SearchSpec, resolve_spec
from service.store import Store
from service.store.db import upgrade

TINY_OVERRIDES: dict[str, Any] = {
    "epochs": 2,
    "controller": {"steps_per_epoch": 2, "archs_per_step": 3},
    "child": {"num_layers": 1, "channels": 4, "batch_size": 16, "steps_per_epoch": 3, "reward_batch": 16},
    "derive": {"num_samples": 4, "top_k": 2},
    "retrain": {
        "epochs": 1,
        "top_k": 1,
        "num_layers": 1,
        "channels": 4,
        "batch_size": 16,
        "steps_per_epoch": 2,
    },
}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One small local Ray for every worker test (starting one costs seconds); its node also offers
    one unit of the custom resource ``node_a`` and no GPU, even on a machine with one
    (tests/workers/test_placement.py places by them)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=0,
            resources={"node_a": 1},
            include_dashboard=False,
            object_store_memory=100 * 1024 * 1024,
            log_to_driver=False,
        )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ENAS_HOME of the module: its embedded Redis is stopped at the end."""
    path = tmp_path_factory.mktemp("enas-home")
    handle, _ = start_embedded(path)
    yield path
    handle.shutdown()


@pytest.fixture
def settings(home: Path, tmp_path: Path) -> Settings:
    """Settings with a fresh SQLite database per test, the module's embedded Redis, local Ray."""
    return Settings(
        home=home,
        database_url=f"sqlite:///{tmp_path / 'enas.db'}",
        redis_url=None,
        ray_address=None,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    upgrade(settings.db_url)
    s = Store(settings.db_url)
    yield s
    s.dispose()


@pytest.fixture
def queue(settings: Settings) -> Iterator[Queue]:
    """A queue with a random prefix (the worker under test gets the same prefix)."""
    client = connect(settings)
    yield Queue.on(client, prefix=f"enastest-{uuid.uuid4().hex[:10]}")
    client.close()


@pytest.fixture
def tiny_spec() -> Callable[..., dict[str, Any]]:
    """``tiny_spec(**overrides)``: a resolved demo-micro spec shrunk to seconds of CPU."""

    def make(**overrides: Any) -> dict[str, Any]:
        fields = {"space": "micro", **TINY_OVERRIDES, **overrides}
        return resolve_spec(SearchSpec(**fields))

    return make
