"""What a search costs, estimated at submit time from its resolved spec (no torch: a closed formula).

The unit is a multiply-accumulate (MAC) of training compute. A training step costs 3 forward
passes (forward plus backward), a reward or derive evaluation one. Per example, a forward pass of:

* a CNN child (keys ``channels``, ``num_layers``): ``(num_layers + 2) x units x 9 x C^2 x H x W``:
  every cell (two reductions added) runs ``units`` 3x3 convolutions at the first cells' ``C``
  channels and the image's ``H x W`` pixels (a reduction halves the side and doubles the channels,
  so ``C^2 x H x W`` stays about the same); ``units`` = 2 x ``num_nodes`` (micro), 2 x
  ``num_blocks`` (nasnet), 1 (macro, one op per layer). Separable and pooling ops cost less, so
  this errs high.
* a recurrent child (key ``hidden_size``): per token ``(num_nodes + 1) x 2 x H^2 + V x H`` (each
  node's highway projection, the input's, the softmax over the vocabulary of ``V`` words).

A search = ``epochs x (shared steps x batch x 3 + controller steps x archs_per_step x
reward_batch) x forward`` + ``derive.num_samples x reward_batch x forward`` + (when retraining is
enabled) ``retrain.top_k x retrain.epochs x steps x batch x 3 x forward`` at the retraining sizes.
Steps per epoch are the spec's, or one pass over the train split (sizes below). The controller's
own LSTM is left out (a few thousand times smaller). ``ENAS_MAX_COST`` (``service.settings``)
bounds the total; its default admits every ``paper-*`` preset.
"""

from __future__ import annotations

import math
from typing import Any

TRAIN_EXAMPLES = {"digits": 1258, "cifar10": 45_000, "synthetic-cifar": 4500}
"""Images in each image dataset's train split."""
IMAGE_PIXELS = {"digits": 8 * 8, "cifar10": 32 * 32, "synthetic-cifar": 32 * 32}
TRAIN_TOKENS = {"ptb": 929_589, "synthetic-ptb": 20_000}
"""Tokens in each text dataset's train split (the real PTB's; ptb-mini has fewer)."""
VOCABULARY = {"ptb": 10_000, "synthetic-ptb": 100}


def _forward(section: dict[str, Any], child: dict[str, Any], dataset: str) -> tuple[float, float]:
    """(MACs of one forward pass per example, examples per training step's batch unit) for the
    model that ``section`` sizes (the child's keys fill what it lacks, e.g. macro's depth)."""
    if "hidden_size" in section:
        h = section["hidden_size"]
        per_token = (child["num_nodes"] + 1) * 2 * h * h + VOCABULARY[dataset] * h
        return float(per_token), float(section["bptt"])
    units = 2 * child.get("num_nodes", child.get("num_blocks", 0)) or 1
    layers = section.get("num_layers", child["num_layers"]) + 2
    return float(layers * units * 9 * section["channels"] ** 2 * IMAGE_PIXELS[dataset]), 1.0


def _steps(section: dict[str, Any], dataset: str, per_example: float) -> float:
    if section.get("steps_per_epoch"):
        return float(section["steps_per_epoch"])
    examples = TRAIN_EXAMPLES.get(dataset) or TRAIN_TOKENS[dataset] / per_example
    return float(math.ceil(examples / section["batch_size"]))


def estimate(spec: dict[str, Any]) -> dict[str, float]:
    """The estimated training compute of a resolved spec: ``search_macs`` (shared training,
    rewards, derivation), ``retrain_macs`` and their sum ``macs``."""
    dataset, child, controller = spec["dataset"], spec["child"], spec["controller"]
    forward, unit = _forward(child, child, dataset)
    per_epoch = (
        _steps(child, dataset, unit) * child["batch_size"] * 3
        + controller["steps_per_epoch"] * controller["archs_per_step"] * child["reward_batch"]
    )
    search = (
        (spec["epochs"] * per_epoch + spec["derive"]["num_samples"] * child["reward_batch"]) * unit * forward
    )
    retrain = 0.0
    section = spec["retrain"]
    if section["enabled"]:
        r_forward, r_unit = _forward(section, child, dataset)
        steps = _steps(section, dataset, r_unit)
        retrain = (
            section["top_k"] * section["epochs"] * steps * section["batch_size"] * 3 * r_unit * r_forward
        )
    return {"macs": search + retrain, "search_macs": search, "retrain_macs": retrain}
