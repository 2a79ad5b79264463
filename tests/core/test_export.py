"""Exports: the JSON document, the standalone model.py (same outputs as the package's child on the
same weights, runs without this package), and ONNX (checker, onnxruntime outputs)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from enas_core.codegen import (
    DATASET_SHAPES,
    ExportError,
    export_document,
    network_config,
    pytorch_source,
    read_document,
)
from enas_core.export import build_child, check_onnx, example_inputs, export_onnx, load_weights, local_path
from enas_core.genotype import Genotype
from enas_core.spaces import get_plugin, get_space, list_spaces
from service.presets import PRESETS, get_preset
from tests.core.conftest import demo_params

ROOT = Path(__file__).resolve().parents[2]
TORCH_SITE = str(Path(torch.__file__).resolve().parents[1])

# tiny shapes per space: (space params, dataset, retrain overrides); a space not listed runs at its
# demo preset's shapes
CASES: dict[str, tuple[dict[str, int], str, dict[str, Any]]] = {
    "micro": ({"num_nodes": 5}, "digits",
              {"num_layers": 3, "channels": 8, "keep_prob": 0.8, "drop_path_keep": 0.6, "aux_weight": 0.4}),
    "macro": ({"num_layers": 6}, "digits", {"channels": 8, "keep_prob": 0.8}),
    "rnn": ({"num_nodes": 6}, "synthetic-ptb", {"hidden_size": 16}),
}  # fmt: skip


def _case(space: str) -> tuple[dict[str, int], str, dict[str, Any]]:
    demo = get_preset(get_plugin(space).default_preset)
    return CASES.get(space, (demo_params(space), demo["dataset"], {}))


def _genotype(space: str, seed: int = 0) -> Genotype:
    configured = get_space(space, **_case(space)[0])
    rng = random.Random(seed)
    return Genotype.of(configured, [rng.randrange(d.choices) for d in configured.decisions])


def _spec(space: str) -> dict[str, Any]:
    spec = get_preset(get_plugin(space).default_preset)
    _, dataset, retrain = _case(space)
    return {**spec, "dataset": dataset, "retrain": {**spec["retrain"], **retrain}}


def _network(space: str) -> dict[str, Any]:
    return network_config(_genotype(space), _spec(space))


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _run(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # same dropout / drop-path draws on both sides
    out = model(*inputs)
    return out[0] if isinstance(out, tuple) else out


# --- the JSON document and the network shape -----------------------------------------------------
def test_document_round_trips_through_genotype_from_dict() -> None:
    genotype, network = _genotype("micro"), _network("micro")
    doc = json.loads(json.dumps(export_document(genotype, network, {"search_id": 3, "architecture_id": 7})))
    assert doc["version"] == 1 and doc["space"] == "micro" and doc["structured"]["normal"]["nodes"]
    assert doc["source"] == {"search_id": 3, "architecture_id": 7}
    assert Genotype.from_dict(doc) == genotype
    assert read_document(doc) == (genotype, network)
    with pytest.raises(ExportError, match="network"):
        read_document(genotype.to_dict())


def test_network_config_of_every_preset() -> None:
    for name, preset in PRESETS.items():
        space = preset["space"]
        genotype = Genotype.of(get_space(space), [0] * get_space(space).num_tokens)
        network = network_config(genotype, preset)
        assert network["space"] == space, name
        if space == "micro":
            assert network["num_layers"] == preset["retrain"]["num_layers"]
            assert network["aux_head"] == (preset["retrain"]["aux_weight"] > 0)
        elif space == "macro":
            assert network["num_layers"] == 12 and network["channels"] == preset["retrain"]["channels"]
        elif space == "rnn":
            assert network["hidden_size"] == preset["retrain"]["hidden_size"]
    with pytest.raises(ExportError, match="unknown dataset"):
        network_config(_genotype("micro"), {**_spec("micro"), "dataset": "mnist"})
    with pytest.raises(ExportError, match="retrain.channels"):
        spec = _spec("macro")
        network_config(_genotype("macro"), {**spec, "retrain": {"keep_prob": 0.5}})


def test_dataset_shapes_match_the_loaders() -> None:
    from enas_core.data.loading import load_dataset
    from enas_core.data.synthetic import synthetic_cifar

    data = load_dataset("digits", seed=0)
    digits = {"in_channels": data.in_channels, "image_size": data.image_size, "num_classes": data.num_classes}
    assert DATASET_SHAPES["digits"] == digits
    defaults = inspect.signature(synthetic_cifar).parameters  # generating it takes seconds
    cifar = {"in_channels": 3, "image_size": defaults["image_size"].default,
             "num_classes": defaults["num_classes"].default}  # fmt: skip
    assert DATASET_SHAPES["synthetic-cifar"] == cifar
    assert DATASET_SHAPES["synthetic-ptb"]["vocab_size"] == load_dataset("synthetic-ptb", seed=0).vocab_size


def test_codegen_never_imports_torch() -> None:
    code = (
        "import sys, service.api.app\n"
        "from enas_core.codegen import pytorch_source, network_config\n"
        "from enas_core.genotype import Genotype\n"
        "from service.presets import get_preset\n"
        "g = Genotype.from_dict({'space': 'macro', 'structured': {'layers': [{'op': 'conv_3x3'}]"
        " + [{'op': 'max_pool_3x3', 'skips': [0]}] * 11}})\n"
        "assert 'def build_model' in pytorch_source(g, network_config(g, get_preset('demo-macro')))\n"
        "assert 'torch' not in sys.modules, 'codegen pulled torch'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# --- the standalone module: same parameters, same outputs --------------------------------------
@pytest.mark.parametrize("space", list_spaces())
def test_exported_module_equals_the_package_child(space: str, tmp_path: Path) -> None:
    genotype, network = _genotype(space), _network(space)
    path = tmp_path / f"model_{space}.py"
    path.write_text(pytorch_source(genotype, network, {"test": space}))
    exported = _load_module(path)
    torch.manual_seed(1)
    child = build_child(genotype, network)
    mine = exported.build_model()
    assert list(mine.state_dict()) == list(child.state_dict())
    mine.load_state_dict(child.state_dict())  # strict: same names and shapes
    inputs = example_inputs(network, batch_size=3)
    if hasattr(child, "set_drop_path_progress"):
        child.set_drop_path_progress(0.5)
        mine.set_drop_path_progress(0.5)
    for training in (False, True):
        child.train(training)
        mine.train(training)
        with torch.no_grad():
            torch.testing.assert_close(_run(mine, inputs, 5), _run(child, inputs, 5), rtol=0, atol=0)
    if network.get("aux_head"):  # the aux head too
        torch.manual_seed(5)
        aux_child = child.forward_aux(*inputs)[1]
        torch.manual_seed(5)
        aux_mine = mine.forward_aux(*inputs)[1]
        assert aux_child is not None and torch.equal(aux_child, aux_mine)


CLEAN_SCRIPT = """
import importlib, runpy, sys
try:
    import enas_core
except ImportError:
    pass
else:
    sys.exit("enas_core is importable here: the test cannot show independence")
import torch
for space in sys.argv[1:]:
    model = importlib.import_module("model_" + space)
    net = model.build_model("weights_" + space + ".pt").eval()
    inputs = torch.load("inputs_" + space + ".pt")
    with torch.no_grad():
        out = net(*inputs)
    torch.save(out[0] if isinstance(out, tuple) else out, "out_" + space + ".pt")
    before = [p.detach().clone() for p in net.parameters()]
    loss = model.train_step(net, model.NETWORK, inputs)
    changed = sum(not torch.equal(a, p) for a, p in zip(before, net.parameters()))
    assert loss == loss and changed > 0, (loss, changed)
    print(space, "ok", round(loss, 4), changed)
runpy.run_path("model_" + sys.argv[1] + ".py", run_name="__main__")  # what `python model_<space>.py` does
"""


def _clean_env(folder: Path) -> dict[str, str]:
    """PYTHONPATH = the folder and torch's site-packages, nothing of this project."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, "PYTHONPATH": f"{folder}{os.pathsep}{TORCH_SITE}", "PYTHONNOUSERSITE": "1"}


def test_exported_module_runs_in_a_clean_interpreter(tmp_path: Path) -> None:
    spaces = list_spaces()
    expected = {}
    for space in spaces:
        genotype, network = _genotype(space, seed=3), _network(space)
        (tmp_path / f"model_{space}.py").write_text(pytorch_source(genotype, network))
        torch.manual_seed(2)
        child = build_child(genotype, network).eval()
        torch.save(child.state_dict(), tmp_path / f"weights_{space}.pt")
        inputs = example_inputs(network)
        torch.save(inputs, tmp_path / f"inputs_{space}.pt")
        with torch.no_grad():
            out = child(*inputs)
        expected[space] = out[0] if isinstance(out, tuple) else out
    # -S: no site module, so no .pth file (an editable install of this project) is read
    command = [sys.executable, "-S", "-s", "-c", CLEAN_SCRIPT, *spaces]
    env = _clean_env(tmp_path)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for space in spaces:
        assert f"{space} ok" in result.stdout
        got = torch.load(tmp_path / f"out_{space}.pt")
        torch.testing.assert_close(got, expected[space], rtol=1e-6, atol=1e-6)
    assert "one SGD training step: loss" in result.stdout


def test_load_weights_and_local_paths(tmp_path: Path) -> None:
    genotype, network = _genotype("macro"), _network("macro")
    child = build_child(genotype, network)
    torch.save({"model": child.state_dict()}, tmp_path / "w.pt")
    other = load_weights(build_child(genotype, network), tmp_path / "w.pt")
    pairs = zip(child.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert local_path(str(tmp_path / "w.pt")) == tmp_path / "w.pt"
    assert local_path((tmp_path / "w.pt").as_uri()) == tmp_path / "w.pt"
    assert local_path("s3://bucket/w.pt") is None and local_path(str(tmp_path / "nope.pt")) is None
    with pytest.raises(ValueError, match="space"):
        build_child(genotype, _network("micro"))


# --- ONNX ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", list_spaces())
def test_onnx_export_checks_and_matches(space: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    genotype, network = _genotype(space), _network(space)
    child = build_child(genotype, network).eval()
    path = export_onnx(child, network, tmp_path / "model.onnx")
    check_onnx(path)
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(network, batch_size=4)  # another batch size than the export's
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feeds)
    with torch.no_grad():
        out = child(*inputs)
    expected = out if isinstance(out, tuple) else (out,)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-4, atol=1e-4)
