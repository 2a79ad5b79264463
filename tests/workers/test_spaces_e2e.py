"""The demo preset of every registered space (`list_spaces()`, shrunk to one short epoch), and
those of macro and rnn at their own sizes, run end to end through the service's worker: real
SQLite store, embedded Redis, local Ray (the session fixtures of conftest.py). demo-rnn runs on
its default synthetic corpus and, once scripts/prepare_data.py has put Penn Treebank text into
``settings.data_dir``, on ``dataset: ptb`` with no data_dir in the spec (the worker resolves
``<settings.data_dir>/ptb``)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enas_core.spaces import get_plugin, list_spaces
from service.presets import PRESETS
from service.queue import Job, Queue
from service.settings import Settings
from service.spec import SearchSpec, resolve_spec
from service.store import Store
from workers.worker import run_worker

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]
SHARED_PTB = ROOT.parent / "shared" / "data" / "ptb-mini"


def _run(store: Store, queue: Queue, settings: Settings, **spec: Any) -> Any:
    """Submit a resolved spec, run the worker until the queue is empty, return the final record."""
    search = store.create_search(spec=resolve_spec(SearchSpec(**spec)))
    queue.jobs.push(Job.search(search.id))
    assert run_worker(settings, burst=True, worker_id=f"w-{search.id}", queue_prefix=queue.prefix) == 1
    return store.get_search(search_id=search.id)


def _assert_complete(
    store: Store, search: Any, epochs: int, samples_per_epoch: int, retrained: bool = True
) -> None:
    assert search.status == "succeeded", (search.error, search.error_traceback)
    assert [e.epoch for e in store.list_epochs(search_id=search.id)] == list(range(epochs))
    samples, _ = store.list_architectures(search_id=search.id, phase="sample", limit=500)
    assert len(samples) == epochs * samples_per_epoch
    assert all(a.genotype and a.genotype["space"] == search.spec["space"] for a in samples)
    assert store.list_derived(search_id=search.id)
    if not retrained:
        assert store.list_retrains(search_id=search.id) == []
        return
    (retrain,) = store.list_retrains(search_id=search.id)
    assert retrain.status == "succeeded" and retrain.params and retrain.params > 0
    assert retrain.test_score is not None and math.isfinite(retrain.test_score)


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_demo_completes(store: Store, queue: Queue, settings: Settings, name: str) -> None:
    """One short epoch of the space's default preset: sampled, derived and retrained (1 epoch)."""
    preset = get_plugin(name).default_preset
    archs = PRESETS[preset]["controller"]["archs_per_step"]
    search = _run(
        store,
        queue,
        settings,
        preset=preset,
        epochs=1,
        child={"steps_per_epoch": 10},
        controller={"steps_per_epoch": 2},
        retrain={"epochs": 1},
    )
    assert search.spec["space"] == name
    _assert_complete(store, search, epochs=1, samples_per_epoch=2 * archs)


def test_demo_macro_completes(store: Store, queue: Queue, settings: Settings) -> None:
    search = _run(store, queue, settings, preset="demo-macro", epochs=2)
    _assert_complete(store, search, epochs=2, samples_per_epoch=10 * 10)
    samples, _ = store.list_architectures(search_id=search.id, phase="sample", limit=500)
    assert all(0.0 <= a.reward <= 1.0 and len(a.tokens) == 4 + 4 * 3 // 2 for a in samples)
    metrics = store.list_epochs(search_id=search.id)[-1].metrics
    assert metrics["skip_penalty"] > 0  # the macro controller's KL term reached the loss
    (retrained,) = store.list_retrains(search_id=search.id)
    assert 0.0 <= retrained.test_score <= 1.0  # test accuracy


def test_demo_rnn_completes_on_its_default_corpus(store: Store, queue: Queue, settings: Settings) -> None:
    search = _run(store, queue, settings, preset="demo-rnn", epochs=2)
    assert search.spec["dataset"] == "synthetic-ptb"
    _assert_complete(store, search, epochs=2, samples_per_epoch=10 * 10)
    samples, _ = store.list_architectures(search_id=search.id, phase="sample", limit=500)
    assert all(0.0 < a.reward <= 80.0 and len(a.tokens) == 2 * 4 - 1 for a in samples)
    assert store.list_retrains(search_id=search.id)[0].test_score > 1.0  # a perplexity


def _ptb_source(tmp_path: Path) -> Path:
    """The folder holding ptb-mini/: the repository's neighbour when present, else a small corpus
    written here in the same format (so the test runs on any checkout)."""
    if SHARED_PTB.is_dir():
        return SHARED_PTB.parent
    folder = tmp_path / "source" / "ptb-mini"
    folder.mkdir(parents=True)
    words = " ".join(f"w{i % 97} w{(i * 7) % 89}" for i in range(40))
    for split, lines in (("train", 400), ("valid", 80), ("test", 80)):
        (folder / f"ptb.{split}.txt").write_text(f" {words} \n" * lines)
    return folder.parent


def test_demo_rnn_reads_ptb_from_the_workers_data_dir(
    store: Store, queue: Queue, settings: Settings, tmp_path: Path
) -> None:
    assert settings.data_dir is not None
    prepared = subprocess.run(
        [
            sys.executable,
            "scripts/prepare_data.py",
            "--only",
            "ptb",
            "--data-dir",
            str(settings.data_dir),
            "--source",
            str(_ptb_source(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert prepared.returncode == 0, prepared.stderr
    assert (settings.data_dir / "ptb" / "ptb.train.txt").is_file()

    no_retrain = {"enabled": False}  # retraining is covered above; a pass over real text takes long
    search = _run(store, queue, settings, preset="demo-rnn", dataset="ptb", epochs=1, retrain=no_retrain)
    assert search.spec["data_dir"] is None  # found through settings.data_dir / "ptb"
    _assert_complete(store, search, epochs=1, samples_per_epoch=10 * 10, retrained=False)

    (settings.data_dir / "ptb" / "ptb.valid.txt").unlink()
    broken = _run(store, queue, settings, preset="demo-rnn", dataset="ptb", epochs=1, retrain=no_retrain)
    assert broken.status == "failed" and "ptb.valid.txt" in (broken.error or "")
