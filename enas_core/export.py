"""Exports that need torch: the package's child network of an export document, and ONNX.

`build_child(genotype, network)` builds the final-layout child with the space's child module
(`enas_core/zoo/<name>/child.py`) from the shape `enas_core.codegen.network_config` gives;
`load_weights` fills it from a saved state_dict; `export_onnx` writes it as ONNX (the TorchScript
exporter, ``dynamo=False``: no onnxscript needed) and `check_onnx` runs ``onnx.checker`` on the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from torch import Tensor, nn

from enas_core.genotype import Genotype
from enas_core.spaces import get_plugin, load

ONNX_OPSET = 17


def build_child(genotype: Genotype, network: Mapping[str, Any]) -> nn.Module:
    """The final-layout child network of `genotype` with the shape `network`, freshly initialised:
    the space's child module's `build_model_from`, the same code the exported model.py runs.

    Raises:
        ValueError: `network` is for another space or lacks a key.
    """
    if network.get("space", genotype.space) != genotype.space:
        raise ValueError(f"network is for the {network.get('space')} space, the genotype {genotype.space}")
    build = load(f"{get_plugin(genotype.space).child_module}:build_model_from")
    try:
        model: nn.Module = build(genotype.to_dict(), network)
    except KeyError as e:
        raise ValueError(f"network lacks {e.args[0]!r}") from e
    return model


def example_inputs(network: Mapping[str, Any], batch_size: int = 2) -> tuple[Tensor, ...]:
    """Random inputs of the network's shape (the child module's `example_input`): images
    ``(B, C, S, S)``; or token ids ``(T, B)`` and a zero hidden state ``(B, H)`` (language task)."""
    make = load(f"{get_plugin(str(network['space'])).child_module}:example_input")
    inputs: tuple[Tensor, ...] = make(network, batch_size)
    return inputs


def local_path(uri: str | None) -> Path | None:
    """The existing local file a path or ``file://`` URI names, else None (remote or missing)."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
    return path if path.is_file() else None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict saved with ``torch.save`` (bare, or under a ``"model"`` key) into `model`.

    Raises:
        RuntimeError: the keys or shapes do not match the model.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    model.load_state_dict(state)
    return model


def export_onnx(
    model: nn.Module, network: Mapping[str, Any], path: str | Path, *, opset: int = ONNX_OPSET
) -> Path:
    """Write `model` (in eval mode) as ONNX to `path`; the batch dimension is dynamic.

    Inputs are named ``images`` (image task) or ``token_ids`` and ``hidden`` (language task),
    outputs ``logits`` (and ``next_hidden``). A recurrent cell is unrolled over the example's 5 steps.
    """
    model = model.eval()
    inputs = example_inputs(network)
    if get_plugin(str(network["space"])).task == "language":
        names, outputs = ["token_ids", "hidden"], ["logits", "next_hidden"]
        axes = {"token_ids": {1: "batch"}, "hidden": {0: "batch"}, "logits": {1: "batch"},
                "next_hidden": {0: "batch"}}  # fmt: skip
    else:
        names, outputs = ["images"], ["logits"]
        axes = {"images": {0: "batch"}, "logits": {0: "batch"}}
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, inputs, str(path), dynamo=False, opset_version=opset, input_names=names,
                          output_names=outputs, dynamic_axes=axes)  # fmt: skip
    return path


def check_onnx(path: str | Path) -> None:
    """Run ``onnx.checker.check_model`` on the file (full check, shapes inferred).

    Raises:
        ImportError: the ``onnx`` package is not installed; onnx.checker.ValidationError: invalid.
    """
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
