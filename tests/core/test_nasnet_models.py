"""The NASNet space's models (enas_core/zoo/nasnet): the ops built by name, the final child, the
shared model (path-only), the core's trainers and search loop driving them, the standalone model.py."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from enas_core import codegen, controller_trainer
from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller import ControllerConfig
from enas_core.genotype import Genotype
from enas_core.image_trainer import SharedTrainer
from enas_core.retrain import retrain_image
from enas_core.search import derive, run_search_epoch
from enas_core.zoo import image_ops
from enas_core.zoo.nasnet import child, shared
from enas_core.zoo.nasnet.controller import NasnetController
from enas_core.zoo.nasnet.presets import PRESETS
from enas_core.zoo.nasnet.space import KNOWN, NASNET_OPS, NasnetSpace
from tests.core.test_nasnet import _controller

NASNET_DIR = Path(child.__file__).parent


# --- the child --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [8, 5])
def test_every_op_by_name_keeps_channels_and_halves_on_stride_2(size: int) -> None:
    x = torch.randn(2, 4, size, size)
    for name in NASNET_OPS:
        for stride in (1, 2):
            out = image_ops.create_op(child.NASNET_OP_REGISTRY, name, 4, stride)(x)
            assert out.shape == (2, 4, math.ceil(size / stride), math.ceil(size / stride)), name
    with pytest.raises(KeyError):
        image_ops.create_op(child.NASNET_OP_REGISTRY, "conv_5x5", 4, 1)


def _loose_input_genotype() -> list[int]:
    """Every op and both combines; reduction cell leaves input 0 unused (shrunk into the output)."""
    normal = [1, 0, 0, 1, 1, 2, 1, 2, 3, 0, 3, 2, 4, 5, 1, 0, 4, 6, 7, 0, 5, 3, 8, 9, 1]
    reduce = [1, 1, 10, 11, 1, 2, 1, 12, 0, 0, 3, 2, 4, 5, 1, 1, 4, 6, 7, 0, 5, 3, 8, 9, 1]
    return normal + reduce


@pytest.mark.parametrize(
    ("genotype", "in_channels", "size", "aux"),
    [("nasnet-a", 1, 8, False), ("loose", 1, 8, False), ("nasnet-a", 3, 32, True), ("loose", 3, 32, False)],
)
def test_child_forward_backward(genotype: str, in_channels: int, size: int, aux: bool) -> None:
    space = NasnetSpace()
    tokens = KNOWN["nasnet-a"] if genotype == "nasnet-a" else _loose_input_genotype()
    assert space.structured(tokens)["reduce"]["concat"][0] == 0 or genotype == "nasnet-a"
    config = child.NasnetNetConfig(
        num_layers=3, channels=8, in_channels=in_channels, image_size=size, aux_head=aux, drop_path_keep=0.7
    )
    net = child.NasnetNet(space.structured(tokens), config).train()
    net.set_drop_path_progress(0.5)
    logits, aux_logits = net.forward_aux(torch.randn(4, in_channels, size, size))
    assert logits.shape == (4, 10) and (aux_logits is not None) == aux
    loss = F.cross_entropy(logits, torch.randint(0, 10, (4,)))
    if aux_logits is not None:
        loss = loss + 0.4 * F.cross_entropy(aux_logits, torch.randint(0, 10, (4,)))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# --- the shared model -------------------------------------------------------------------------
def _tiny_shared(num_blocks: int = 2) -> tuple[NasnetSpace, shared.SharedNasnetNet]:
    space = NasnetSpace(num_blocks=num_blocks)
    cfg = ChildConfig(num_layers=3, channels=8, aux_weight=0.0, keep_prob=1.0)
    data = type("Shape", (), {"in_channels": 1, "num_classes": 10, "image_size": 8})()
    return space, shared.build_shared(space, cfg, data)


def test_shared_model_runs_only_the_sampled_path() -> None:
    space, model = _tiny_shared()
    c = _controller(num_blocks=2)
    for tokens in c.sample(3, torch.Generator().manual_seed(2)).tokens.tolist():
        model.zero_grad(set_to_none=True)
        logits = model(torch.randn(4, 1, 8, 8), tokens)
        assert logits.shape == (4, 10)
        F.cross_entropy(logits, torch.randint(0, 10, (4,))).backward()
        for layer, cell in enumerate(model.cells):
            blocks = space.cells(tokens)[1 if cell.reduction else 0]
            grads = {tuple(n.split(".")[:2]) for n, p in cell.named_parameters() if p.grad is not None}
            with_grad = {key for part, key in grads if part == "ops"}
            expected = {
                shared._key(k, slot, idx, NASNET_OPS[op])
                for k, b in enumerate(blocks)
                for slot, (idx, op) in enumerate(zip(b.inputs, b.ops, strict=True))
                if NASNET_OPS[op] in shared.WEIGHTED_OPS
            }
            assert with_grad == expected, layer
            assert {key for part, key in grads if part == "project"} == {
                str(k) for k, b in enumerate(blocks) if b.combine
            }


def test_shared_trainer_drives_the_model_and_the_loss_goes_down(digits) -> None:
    space = NasnetSpace(num_blocks=2)
    cfg = {**PRESETS["demo-nasnet"]["child"], "channels": 8, "batch_size": 32, "reward_batch": 32}
    trainer = SharedTrainer(space, cfg, digits, seed=0)
    tokens = _controller(num_blocks=2).sample(1, torch.Generator().manual_seed(0)).tokens[0].tolist()
    losses = [a["loss"] for a in trainer.train([tokens] * 40, epoch=0)["per_arch"]]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3
    rewards = trainer.rewards([tokens, tokens])
    assert all(0.0 <= r <= 1.0 for r in rewards)


def test_nasnet_a_retrains_one_step_with_the_image_retrainer(digits) -> None:
    cfg = RetrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, num_layers=3, channels=8, aux_weight=0.0)
    out = retrain_image(NasnetSpace(), KNOWN["nasnet-a"], cfg, digits, seed=0)
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["params"] > 0


def test_a_short_search_end_to_end_with_the_core_loop(digits) -> None:
    """Epoch (shared phase, controller phase), derivation and retraining, as enas_core runs them
    (the plugin is discovered: nothing is patched)."""
    spec = PRESETS["demo-nasnet"]
    space = NasnetSpace(num_blocks=spec["child"]["num_blocks"])
    child_cfg = {**spec["child"], "channels": 8, "steps_per_epoch": 3, "batch_size": 16, "reward_batch": 16}
    trainer = SharedTrainer(space, child_cfg, digits, seed=0)
    section = {**spec["controller"], "steps_per_epoch": 1, "archs_per_step": 2}
    ctrl = controller_trainer.ControllerTrainer(
        space, ControllerConfig.from_dict(section), ControllerTrainConfig.from_dict(section), seed=0
    )
    assert isinstance(ctrl.controller, NasnetController)
    result = run_search_epoch(trainer, ctrl, epoch=0)
    trained = [a for a in result.architectures if a.phase == "train"]
    assert len(trained) == 3 and 0.0 <= result.metrics["reward_mean"] <= 1.0
    best = derive(trainer, ctrl, num_samples=4, top_k=2)
    assert 1 <= len(best) <= 2
    cfg = RetrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, num_layers=3, channels=8, aux_weight=0.0)
    assert 0.0 <= retrain_image(space, best[0][0], cfg, digits, seed=0)["test_accuracy"] <= 1.0


# --- the standalone model.py ------------------------------------------------------------------
_RUN_ALONE = """
import importlib.abc, math, sys
class NoProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("enas_core", "service", "workers"):
            raise ImportError(f"model.py imported {name}")
sys.meta_path.insert(0, NoProject())
sys.path.insert(0, sys.argv[1])
import torch, model
torch.manual_seed(0)
net = model.build_model_from(model.GENOTYPE, model.NETWORK)
inputs = model.example_input(model.NETWORK)
assert net.eval()(*inputs).shape == (2, 10)
assert math.isfinite(model.train_step(net, model.NETWORK, inputs))
"""


def test_exported_module_runs_with_torch_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NASNet-A through the real export path (codegen.pytorch_source, as `enasctl export`)."""
    g = Genotype.of(NasnetSpace(), KNOWN["nasnet-a"])
    spec = {**PRESETS["demo-nasnet"], "retrain": {**PRESETS["demo-nasnet"]["retrain"], "channels": 8}}
    network = codegen.network_config(g, spec)
    genotype = g.to_dict()
    text = codegen.pytorch_source(g, network)
    assert "enas_core" not in text
    (tmp_path / "model.py").write_text(text, encoding="utf-8")
    subprocess.run([sys.executable, "-c", _RUN_ALONE, str(tmp_path)], check=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    model = importlib.import_module("model")
    exported = model.build_model_from(model.GENOTYPE, model.NETWORK)
    package = child.build_model_from(genotype, network)
    exported.load_state_dict(package.state_dict())  # the package child's parameter names
    sys.modules.pop("model", None)
