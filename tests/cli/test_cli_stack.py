"""`enasctl` as a user runs it, against one real stack (API -> Redis -> worker -> Ray -> SQLite):
submit by flags with --watch, the read commands' --json, best, retrain, exports (json, a model.py
that runs without this package, ONNX), exit codes of bad input, cancel and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enas_core.genotype import Genotype
from service.cli.client import EnasClient, EnasClientError
from tests.cli.conftest import CliStack, TinySearch

pytestmark = pytest.mark.e2e

TORCH_SITE = str(Path(torch.__file__).resolve().parents[1])


def test_submit_by_flags_watches_to_success(stack: CliStack, tiny: TinySearch) -> None:
    first, last = tiny.states[0], tiny.states[-1]
    assert first["status"] == "queued" and first["name"] == "tiny"
    assert first["spec"]["controller"]["steps_per_epoch"] == 3 and first["spec"]["retrain"]["epochs"] == 1
    assert last["status"] == "succeeded" and last["progress"] == pytest.approx(1.0)


def test_read_commands_print_json(stack: CliStack, tiny: TinySearch) -> None:
    status = stack.json("status", str(tiny.id))
    assert status["search"]["status"] == "succeeded" and status["derived"]["items"]
    assert stack.json("list")["items"][0]["id"] == tiny.id
    assert stack.json("list", "--status", "succeeded")["counts"]["succeeded"] >= 1
    runs = stack.json("retrains", str(tiny.id))["items"]
    assert runs and runs[0]["status"] == "succeeded" and runs[0]["test_score"] is not None
    lines = stack.run("watch", str(tiny.id), "--json")  # an ended search: one line, exit 0
    assert lines.returncode == 0 and json.loads(lines.stdout.splitlines()[-1])["status"] == "succeeded"


def test_best_is_the_top_derived_architecture(stack: CliStack, tiny: TinySearch) -> None:
    best = stack.json("best", str(tiny.id))
    derived = stack.json("status", str(tiny.id))["derived"]["items"]
    assert best["source"] == "derived" and best["rank"] == 1
    assert best["architecture"]["id"] == derived[0]["architecture_id"]
    assert Genotype.from_dict(best["architecture"]["genotype"]).space == "micro"
    text = stack.run("best", str(tiny.id))
    assert text.returncode == 0
    assert "normal cell" in text.stdout and "reduce cell" in text.stdout and "concat of nodes" in text.stdout


def test_export_json_is_a_versioned_genotype(stack: CliStack, tiny: TinySearch, tmp_path: Path) -> None:
    printed = stack.run("export", str(tiny.id), "--format", "json")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["version"] == 1 and document["network"]["space"] == "micro"
    assert document["network"]["in_channels"] == 1 and document["network"]["image_size"] == 8  # digits
    best = stack.json("best", str(tiny.id))["architecture"]
    assert document["source"]["architecture_id"] == best["id"]
    assert Genotype.from_dict(document).tokens == tuple(best["tokens"])
    sample = stack.json("status", str(tiny.id))["derived"]["items"][-1]["architecture_id"]
    to_file = stack.run("export", str(tiny.id), "-a", str(sample), "-o", str(tmp_path / "g.json"))
    assert to_file.returncode == 0, to_file.stderr
    assert json.loads((tmp_path / "g.json").read_text())["source"]["architecture_id"] == sample


CLEAN_IMPORT = """
import sys
try:
    import enas_core
except ImportError:
    pass
else:
    sys.exit("enas_core is importable: this interpreter is not clean")
import torch, model
net = model.build_model()
inputs = model.example_input(model.NETWORK)
print("loss", model.train_step(net, model.NETWORK, inputs))
print("logits", tuple(net.eval()(*inputs).shape))
"""


def test_export_pytorch_runs_without_this_package(stack: CliStack, tiny: TinySearch, tmp_path: Path) -> None:
    """The issue's done-when: `enasctl export ID --format pytorch -o model.py`, then
    `python -c "import model"` loads and trains it with torch alone."""
    result = stack.run("export", str(tiny.id), "--format", "pytorch", "-o", str(tmp_path / "model.py"))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{tmp_path}{os.pathsep}{TORCH_SITE}"}
    # -S: no site module, so nothing of this project's install (.pth files) is on the path
    clean = subprocess.run(
        [sys.executable, "-S", "-s", "-c", CLEAN_IMPORT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "loss" in clean.stdout and "logits (2, 10)" in clean.stdout


def test_export_onnx_is_built_locally_and_checked(stack: CliStack, tiny: TinySearch, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "model.onnx"
    result = stack.run("export", str(tiny.id), "--format", "onnx", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert "onnx.checker passed" in result.stdout and "retrain-1.pt" in result.stdout  # the trained weights
    onnx.checker.check_model(onnx.load(str(path)))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": torch.randn(3, 1, 8, 8).numpy()})
    assert logits.shape == (3, 10)
    with EnasClient(stack.url) as client, pytest.raises(EnasClientError) as info:  # the API never loads torch
        client.export(stack.json("best", str(tiny.id))["architecture"]["id"], "onnx")
    assert info.value.status == 501 and info.value.code == "not_implemented" and info.value.field == "format"


def test_bad_input_exits_2_naming_the_field(stack: CliStack, tiny: TinySearch, tmp_path: Path) -> None:
    unknown = stack.run("submit", "--space", "micro", "--set", "child.foo=1")
    assert unknown.returncode == 2 and "child.foo" in unknown.stderr
    spec = tmp_path / "spec.yaml"
    spec.write_text("space: micro\ndataset: digits\nbogus: 1\n")
    from_file = stack.run("submit", str(spec))
    assert from_file.returncode == 2 and "bogus" in from_file.stderr
    missing = stack.run("status", "999999")
    assert missing.returncode == 2 and "999999" in missing.stderr
    assert stack.run("export", str(tiny.id), "-a", "999999").returncode == 2
    finished = stack.run("cancel", str(tiny.id))  # 409: it already succeeded
    assert finished.returncode == 2, finished.stderr
    no_retrain = stack.run("cancel-retrain", "999999")
    assert no_retrain.returncode == 2 and "999999" in no_retrain.stderr


def test_client_events_and_drawing(stack: CliStack, tiny: TinySearch) -> None:
    with EnasClient(stack.url) as client:
        events = list(client.events(tiny.id, read_timeout=30))
        assert events[-1]["type"] == "finished" and events[-1]["status"] == "succeeded"
        svg = client.architecture_svg(client.best(tiny.id)["architecture"]["id"])
        assert "<svg" in svg


def test_cancel_and_resume(stack: CliStack, tiny: TinySearch) -> None:
    submitted = stack.json("submit", "--space", "micro", "--dataset", "digits", "--epochs", "50")
    search_id = str(submitted["id"])
    assert stack.json("cancel", search_id)["id"] == submitted["id"]
    ended = stack.run("watch", search_id, timeout=300)  # a cancelled search exits 1
    assert ended.returncode == 1 and "cancelled" in ended.stdout, ended.stdout + ended.stderr
    resumed = stack.json("resume", search_id)
    assert resumed["status"] == "queued"
    stack.json("cancel", search_id)
    assert stack.run("watch", search_id, timeout=300).returncode == 1
