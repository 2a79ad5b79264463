"""Each paper-* preset builds and runs on files in the real distribution formats.

Small CIFAR-10 pickles (``cifar-10-batches-py``: Python-2 style byte-string keys, uint8 rows of
3072) and Penn Treebank text files (Mikolov format) are written to a temp folder; the preset is
resolved with only its step counts and batch sizes shrunk, planned by workers/config.py (so the
data folder is found the way a worker finds it), and run: one search epoch, derivation, and one
retraining step. The architecture sizes stay the paper's (macro 12 layers x 36 channels, retrained
at 96; micro 6 layers x 20 channels x 5 nodes with the aux head, retrained at 15 x 36; rnn 12
nodes, hidden 720, retrained at 748).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from enas_core.controller_trainer import ControllerTrainer
from enas_core.registry import make_shared_trainer
from enas_core.retrain import retrain
from enas_core.search import derive, run_search_epoch
from service.spec import SearchSpec, resolve_spec
from workers.config import build_plan

IMAGES_PER_BATCH, TEST_IMAGES = 8, 8  # 40 training images: 36 train / 4 validation (the last 10%)

SHRINK: dict[str, dict[str, Any]] = {
    "controller": {"steps_per_epoch": 1, "archs_per_step": 2},
    "derive": {"num_samples": 2, "top_k": 1},
}
IMAGE_SHRINK = {
    **SHRINK,
    "child": {"batch_size": 8, "steps_per_epoch": 2, "reward_batch": 4},
    "retrain": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 1},
}
PTB_SHRINK = {
    **SHRINK,
    "child": {"batch_size": 4, "steps_per_epoch": 2, "reward_batch": 4, "bptt": 12},
    "retrain": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 1, "bptt": 12},
}


def _write_pickle(obj: dict[bytes, Any], path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(folder: Path, seed: int = 0) -> None:
    """data_batch_1..5, test_batch, batches.meta as in the original distribution."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [(f"data_batch_{i}", IMAGES_PER_BATCH) for i in range(1, 6)] + [("test_batch", TEST_IMAGES)]
    for name, n in names:
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        _write_pickle({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                       b"filenames": [f"{i}.png".encode() for i in range(n)]}, folder / name)  # fmt: skip
    _write_pickle(
        {b"label_names": [b"c%d" % i for i in range(10)], b"num_vis": 3072}, folder / "batches.meta"
    )


def write_ptb(folder: Path, seed: int = 0) -> None:
    """ptb.train.txt, ptb.valid.txt, ptb.test.txt: one sentence a line, space-separated words."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)] + ["<unk>", "N"]
    folder.mkdir(parents=True)
    for split, lines in (("train", 60), ("valid", 20), ("test", 20)):
        text = [" ".join(rng.choice(words, size=int(rng.integers(4, 12)))) for _ in range(lines)]
        (folder / f"ptb.{split}.txt").write_text("\n".join(f" {line} " for line in text) + "\n")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<root>/cifar10/cifar-10-batches-py and <root>/ptb: what `settings.data_dir` holds."""
    root = tmp_path_factory.mktemp("data")
    write_cifar(root / "cifar10" / "cifar-10-batches-py")
    write_ptb(root / "ptb")
    return root


def _run(
    name: str, shrink: dict[str, Any], data_root: Path
) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """Plan the preset as a worker would and run one epoch, derivation and one retraining step."""
    spec = resolve_spec(SearchSpec(preset=name, **shrink))
    plan = build_plan(spec, data_root=data_root)
    data = plan.dataset.load()
    space = plan.space()
    shared = make_shared_trainer(space, plan.child, data, plan.seed, "cpu")
    controller = ControllerTrainer(space, plan.controller, plan.controller_train, plan.seed)
    epoch = run_search_epoch(shared, controller, 0)
    (best, score), *_ = derive(shared, controller, plan.derive_num_samples, plan.derive_top_k)
    space.validate(best)
    result = retrain(space, best, plan.retrain, data, plan.seed, "cpu")
    return data, shared, epoch.metrics, result


def test_paper_micro_runs_on_cifar_pickles(data_root: Path) -> None:
    data, shared, metrics, result = _run("paper-cifar10-micro", IMAGE_SHRINK, data_root)
    assert data.name == "cifar10" and data.describe()["sizes"] == {"train": 36, "valid": 4, "test": 8}
    cfg = shared.model.config
    assert (cfg.num_layers, cfg.channels, cfg.num_nodes, cfg.image_size) == (6, 20, 5, 32)
    assert shared.model.aux is not None and len(shared.model.cells) == 8
    assert math.isfinite(metrics["shared_loss"]) and 0.0 <= metrics["reward_mean"] <= 1.0
    child = result["model"].net
    assert len(child.cells) == 17 and child.stem[0].out_channels == 3 * 36
    assert result["params"] > result["params_without_aux"] > 0  # the aux head is trained, then counted
    assert 0.0 <= result["test_accuracy"] <= 1.0 and len(result["curve"]) == 1


def test_paper_macro_runs_on_cifar_pickles(data_root: Path) -> None:
    data, shared, metrics, result = _run("paper-cifar10-macro", IMAGE_SHRINK, data_root)
    model = shared.model
    assert (model.num_layers, model.channels, model.num_ops, data.image_size) == (12, 36, 6, 32)
    assert math.isfinite(metrics["shared_loss"]) and metrics["skip_penalty"] > 0
    child = result["model"]
    assert (child.num_layers, child.classifier.in_features) == (12, 96 * 4)  # 96 doubling twice
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["macs"] > 0


def test_paper_ptb_runs_on_mikolov_text(data_root: Path) -> None:
    data, shared, metrics, result = _run("paper-ptb", PTB_SHRINK, data_root)
    assert data.name == "ptb" and "<unk>" in data.vocab and data.oov["valid"] == 0
    model = shared.model
    assert (model.num_nodes, model.hidden_size, len(model.cell.w_nodes)) == (12, 720, 66)
    assert math.isfinite(metrics["shared_loss"]) and 0.0 < metrics["reward_mean"] <= 80.0
    assert result["model"].hidden_size == 748 and math.isfinite(result["test_perplexity"])


def test_a_missing_file_names_itself_and_the_layout(tmp_path: Path) -> None:
    from enas_core.data.errors import DatasetError

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").unlink()
    spec = resolve_spec(SearchSpec(preset="paper-cifar10-micro"))
    with pytest.raises(DatasetError, match=r"data_batch_3.*expected a cifar-10-batches-py folder"):
        build_plan(spec, data_root=tmp_path).dataset.load()
