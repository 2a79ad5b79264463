"""Retrain jobs (``POST /searches/{id}/retrain``) run by the worker end to end: real SQLite, the
embedded Redis, local Ray; the saved weights reproduce the stored test score through an exported
``model.py``. Also: every worker log line carries the job's search id."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.api.schemas import RetrainRequest
from service.api.usecases import retrain_search
from service.auth import Caller
from service.logging import SearchIdFilter
from service.queue import Job, Queue
from service.queue.jobs import encode_job
from service.settings import Settings
from service.store import Store
from tests.workers.conftest import TINY_OVERRIDES
from workers.worker import handle_job, run_worker

Spec = Callable[..., dict[str, Any]]


def _load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("ray_session")
def test_retrain_requested_after_the_search_saves_exportable_weights(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec, tmp_path: Path
) -> None:
    from enas_core.codegen import network_config, pytorch_source
    from enas_core.export import local_path
    from enas_core.genotype import Genotype
    from enas_core.retrain import evaluate_accuracy
    from workers.config import build_plan

    spec = tiny_spec(retrain={**TINY_OVERRIDES["retrain"], "enabled": False})
    search = store.create_search(spec=spec)
    queue.jobs.push(Job.search(search.id))
    assert run_worker(settings, burst=True, worker_id="w1", queue_prefix=queue.prefix) == 1
    assert store.get_search(search_id=search.id).status == "succeeded"
    assert store.list_retrains(search_id=search.id) == []

    (row,) = retrain_search(
        store=store,
        queue=queue,
        search_id=search.id,
        request=RetrainRequest(epochs=2),
        caller=Caller(),
    )
    assert row.status == "queued" and queue.jobs.depth() == 1
    assert run_worker(settings, burst=True, worker_id="w2", queue_prefix=queue.prefix) == 1

    done = store.get_retrain(retrain_id=row.id)
    assert done.status == "succeeded", done.error
    assert done.test_score is not None and 0.0 <= done.test_score <= 1.0 and done.params
    assert done.metrics is not None and done.metrics["requested_epochs"] == 2
    assert len(done.metrics["curve"]) == 2 and done.metrics["attempts"] == 1
    weights = local_path(done.artifact_uri)
    assert weights == Path(str(settings.artifact_dir)) / str(search.id) / f"retrain-{row.id}.pt"
    assert queue.jobs.depth() == 0 and queue.jobs.processing("w2") == []

    # the exported model.py with those weights gives the retrained child's test accuracy
    genotype = Genotype.from_dict(store.get_architecture(architecture_id=row.architecture_id).genotype or {})
    source = tmp_path / "model.py"
    source.write_text(pytorch_source(genotype, network_config(genotype, spec)))
    model = _load_module(source).build_model(str(weights))
    data = build_plan(spec).dataset.load()
    assert evaluate_accuracy(model, data.test_x, data.test_y) == pytest.approx(done.test_score, abs=1e-9)

    again = retrain_search(
        store=store,
        queue=queue,
        search_id=search.id,
        request=RetrainRequest(),
        caller=Caller(),
    )
    assert [r.id for r in again] == [row.id] and queue.jobs.depth() == 0  # already retrained: nothing queued


def test_worker_log_lines_carry_the_search_id(
    store: Store, queue: Queue, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(SearchIdFilter())
    caplog.set_level(logging.INFO, logger="workers.worker")
    search = store.create_search(spec={"space": "micro", "epochs": 1})
    store.mark_running(search_id=search.id)
    store.finish_search(search_id=search.id, status="cancelled")
    stop = threading.Event()
    for job in (Job.search(search.id), Job.retrain(424242)):
        queue.redis.lpush(queue.keys.processing("w"), encode_job(job))
        handle_job(job, store=store, queue=queue, settings=settings, worker_id="w", stop_event=stop)
    records = [r for r in caplog.records if r.name == "workers.worker"]
    assert [getattr(r, "search_id", None) for r in records] == [search.id, None]
    assert "skipping" in records[0].getMessage() and "not in the database" in records[1].getMessage()
    assert queue.jobs.processing("w") == []
