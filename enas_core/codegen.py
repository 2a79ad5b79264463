"""Exports of one architecture that need no torch to produce (standard library only).

* `network_config(genotype, spec)`: the shape of the architecture's final (retrained) network,
  read from a resolved search spec (its ``retrain`` section and the dataset's input shape).
* `export_document(genotype, network, source)`: the JSON export, a versioned genotype
  (`Genotype.to_dict`) plus ``network`` and ``source``; `Genotype.from_dict` reads it back.
* `pytorch_source(genotype, network, source)`: a standalone ``model.py`` defining the child
  network with torch alone (no enas_core needed): ``build_model()``, ``example_input()``,
  ``train_step()`` and a ``__main__`` demo. Its parameter names equal those of the package's
  final-layout children, so their ``state_dict()`` loads into it unchanged.

The API process imports this module (it must never import torch): the model file is assembled
as text from the templates in `enas_core.export_templates`.
"""

from __future__ import annotations

import ast
import pprint
import sys
from collections.abc import Mapping
from importlib import resources
from typing import Any

from enas_core.genotype import Genotype
from enas_core.spaces import GenotypeError

EXPORT_FORMATS = ("json", "pytorch", "onnx")

# Input shapes of the datasets a spec can name, as their loaders produce them with default options.
DATASET_SHAPES: dict[str, dict[str, int]] = {
    "digits": {"in_channels": 1, "image_size": 8, "num_classes": 10},
    "cifar10": {"in_channels": 3, "image_size": 32, "num_classes": 10},
    "synthetic-cifar": {"in_channels": 3, "image_size": 32, "num_classes": 10},
    "ptb": {"vocab_size": 10000},
    "synthetic-ptb": {"vocab_size": 102},  # 100 words, <eos> and <unk>
}
RNN_DEFAULT_INIT_RANGE = 0.05  # enas_core.lm.LMRetrainConfig.init_range
TEMPLATE_PACKAGE = "enas_core.export_templates"
BODY_MARKER = "# --- model.py body ---"
_TEMPLATES = {"micro": ("ops", "micro"), "macro": ("ops", "macro"), "rnn": ("rnn",)}


class ExportError(ValueError):
    """The architecture cannot be exported (an unknown dataset, a spec lacking a needed key)."""


# --- the network's shape --------------------------------------------------------------------
def network_config(genotype: Genotype, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The final network's shape for `genotype`, from a resolved search spec.

    Returns:
        micro: ``{"space"}`` and the fields of ``MicroNetConfig`` (``num_layers``, ``channels``,
        ``num_nodes``, ``num_ops``, ``in_channels``, ``num_classes``, ``image_size``, ``keep_prob``,
        ``aux_head``, ``drop_path_keep``); macro: ``{"space", "num_layers", "channels",
        "num_classes", "in_channels", "image_size", "keep_prob"}``; rnn: ``{"space", "vocab_size",
        "hidden_size", "num_nodes", "dropout_input", "dropout_hidden", "dropout_output", "init_range"}``.

    Raises:
        ExportError: an unknown dataset, or a retrain section without a needed key.
    """
    dataset = spec.get("dataset")
    shape = DATASET_SHAPES.get(str(dataset))
    if shape is None:
        raise ExportError(f"cannot export: unknown dataset {dataset!r} (known: {', '.join(DATASET_SHAPES)})")
    retrain = spec.get("retrain") or {}
    params = dict(genotype.params)
    try:
        if genotype.space == "micro":
            return _micro_network(retrain, params, shape)
        if genotype.space == "macro":
            return _macro_network(retrain, params, shape)
        return _rnn_network(retrain, params, shape)
    except KeyError as e:
        raise ExportError(f"cannot export: the spec lacks retrain.{e.args[0]} or a {dataset} shape") from e


def _micro_network(
    retrain: Mapping[str, Any], params: dict[str, int], shape: dict[str, int]
) -> dict[str, Any]:
    drop_path_keep = float(retrain.get("drop_path_keep", 1.0))
    return {
        "space": "micro",
        "num_layers": int(retrain["num_layers"]),
        "channels": int(retrain["channels"]),
        "num_nodes": params["num_nodes"],
        "num_ops": params["num_ops"],
        "in_channels": shape["in_channels"],
        "num_classes": shape["num_classes"],
        "image_size": shape["image_size"],
        "keep_prob": float(retrain["keep_prob"]),
        "aux_head": float(retrain.get("aux_weight", 0.0)) > 0,
        "drop_path_keep": drop_path_keep if drop_path_keep < 1.0 else None,
    }


def _macro_network(
    retrain: Mapping[str, Any], params: dict[str, int], shape: dict[str, int]
) -> dict[str, Any]:
    return {
        "space": "macro",
        "num_layers": params["num_layers"],  # the genotype fixes L
        "channels": int(retrain["channels"]),
        "num_classes": shape["num_classes"],
        "in_channels": shape["in_channels"],
        "image_size": shape["image_size"],
        "keep_prob": float(retrain["keep_prob"]),
    }


def _rnn_network(retrain: Mapping[str, Any], params: dict[str, int], shape: dict[str, int]) -> dict[str, Any]:
    return {
        "space": "rnn",
        "vocab_size": shape["vocab_size"],
        "hidden_size": int(retrain["hidden_size"]),
        "num_nodes": params["num_nodes"],
        "dropout_input": float(retrain["dropout_input"]),
        "dropout_hidden": float(retrain["dropout_hidden"]),
        "dropout_output": float(retrain["dropout_output"]),
        "init_range": float(retrain.get("init_range", RNN_DEFAULT_INIT_RANGE)),
    }


# --- the JSON export ------------------------------------------------------------------------
def export_document(
    genotype: Genotype, network: Mapping[str, Any], source: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON export: ``Genotype.to_dict()`` (``version``, ``space``, ``params``, ``tokens``,
    ``structured``) plus ``network`` (the final network's shape) and ``source`` (where it came
    from, e.g. ``{"search_id", "architecture_id", "hash"}``)."""
    return {**genotype.to_dict(), "network": dict(network), "source": dict(source or {})}


def read_document(document: Mapping[str, Any]) -> tuple[Genotype, dict[str, Any]]:
    """(genotype, network) of a JSON export.

    Raises:
        GenotypeError: an invalid genotype; ExportError: no ``network`` object.
    """
    genotype = Genotype.from_dict(document)
    network = document.get("network")
    if not isinstance(network, Mapping):
        raise ExportError("the export has no 'network' object (the network's shape)")
    if network.get("space", genotype.space) != genotype.space:
        raise ExportError(f"network is for the {network.get('space')} space, the genotype {genotype.space}")
    return genotype, dict(network)


# --- the standalone PyTorch file -------------------------------------------------------------
_HEADER = '''"""{title}

A standalone PyTorch module file generated by enas-service: it needs torch alone. The network is
the final (retraining) layout of the architecture in GENOTYPE, with the shape in NETWORK.

    import model
    net = model.build_model()                 # fresh weights; build_model("weights.pt") loads a state_dict
    out = net(*model.example_input(model.NETWORK))
    loss = model.train_step(net, model.NETWORK, model.example_input(model.NETWORK))

    python model.py                           # the same: a forward pass and one SGD step

Source: {source}.
"""

from __future__ import annotations

'''

_FOOTER = '''

# ---------------------------------------------------------------------------------------------
# this architecture

GENOTYPE: dict[str, Any] = @GENOTYPE@

NETWORK: dict[str, Any] = @NETWORK@


def build_model(weights: str | None = None) -> nn.Module:
    """The network of GENOTYPE with NETWORK's shape: freshly initialised, or with the state_dict
    saved at `weights` (``torch.save(net.state_dict(), path)``; a ``{"model": state_dict}`` works too)."""
    model = build_model_from(GENOTYPE["tokens"], NETWORK)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
    return model


def main() -> None:
    """Build the model, run it on a random batch, then take one SGD training step."""
    torch.manual_seed(0)
    model = build_model().eval()
    inputs = example_input(NETWORK)
    with torch.no_grad():
        out = model(*inputs)
    logits = out[0] if isinstance(out, tuple) else out
    params = sum(p.numel() for p in model.parameters())
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
    print(f"{GENOTYPE['space']} child, {params} parameters: input {shapes} -> output {tuple(logits.shape)}")
    loss = train_step(model, NETWORK, inputs)
    print(f"one SGD training step: loss {loss:.4f}")


if __name__ == "__main__":
    main()
'''


def pytorch_source(
    genotype: Genotype, network: Mapping[str, Any], source: Mapping[str, Any] | None = None
) -> str:
    """The text of a standalone ``model.py`` for `genotype` with the shape `network`.

    Raises:
        ExportError: `network` is for another space.
    """
    if network.get("space", genotype.space) != genotype.space:
        raise ExportError(f"network is for the {network.get('space')} space, the genotype {genotype.space}")
    parts = [_template(name) for name in _TEMPLATES[genotype.space]]
    imports = _imports(parts)
    bodies = [_body(text, name) for text, name in zip(parts, _TEMPLATES[genotype.space], strict=True)]
    where = ", ".join(f"{k} {v}" for k, v in (source or {}).items()) or "a genotype"
    header = _HEADER.format(
        title=f"The {genotype.space} child network of one ENAS architecture.", source=where
    )
    footer = _FOOTER.replace("@GENOTYPE@", _literal(genotype.to_dict())).replace(
        "@NETWORK@", _literal(dict(network))
    )
    return header + "\n".join(imports) + "\n\n" + "\n\n".join(bodies) + footer


def _template(name: str) -> str:
    return resources.files(TEMPLATE_PACKAGE).joinpath(f"{name}.py").read_text(encoding="utf-8")


def _body(text: str, name: str) -> str:
    head, marker, body = text.partition(BODY_MARKER)
    if not marker:
        raise RuntimeError(f"template {name}.py lacks the line {BODY_MARKER!r}")  # a packaging bug
    return body.strip("\n") + "\n"


def _imports(parts: list[str]) -> list[str]:
    """The templates' top-level imports, minus ``__future__`` and their own package, merged and
    ordered as isort does: the standard library, a blank line, then torch."""
    plain: set[str] = set()
    names: dict[str, set[str]] = {}
    for text in parts:
        for node in ast.parse(text.partition(BODY_MARKER)[0]).body:
            if isinstance(node, ast.Import):
                plain.add(ast.unparse(node))
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] not in ("__future__", "enas_core"):
                    names.setdefault(node.module, set()).update(a.name for a in node.names)
    sections: list[list[str]] = [[], []]
    for line in sorted(plain, key=lambda t: t.split()[1]):
        sections[_section(line.split()[1])].append(line)
    for module in sorted(names):
        sections[_section(module)].append(f"from {module} import {', '.join(sorted(names[module]))}")
    return [*sections[0], "", *sections[1]] if sections[0] else sections[1]


def _section(module: str) -> int:
    return 0 if module.split(".")[0] in sys.stdlib_module_names else 1


def _literal(value: Any) -> str:
    """A Python literal of a JSON-like value (True/False/None, not true/false/null)."""
    return pprint.pformat(value, indent=4, width=100, sort_dicts=False)


__all__ = [
    "DATASET_SHAPES",
    "EXPORT_FORMATS",
    "ExportError",
    "GenotypeError",
    "export_document",
    "network_config",
    "pytorch_source",
    "read_document",
]
