"""The network shape of the cell-stacking image spaces (micro, nasnet): standard library only.

One definition of how a final network's shape follows from a space's cell params, a spec's retrain
section and the dataset's input shape (the spaces' `network_config`), and of how the trainers'
configs feed it (`trainer_network`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

IMAGE_INPUT_KEYS = ("in_channels", "num_classes", "image_size")
"""The dataset's input shape, as the network config names it."""
STACK_KEYS = ("num_layers", "channels", "keep_prob", "aux_weight")
"""What a cell stack's shape reads from a ChildConfig / RetrainConfig (besides drop_path_keep)."""

NetworkConfig = Callable[[Mapping[str, int], Mapping[str, Any], Mapping[str, int]], dict[str, Any]]
"""A space's `network_config(params, retrain, shape)`."""


def cell_network_config(
    cell: Mapping[str, int], retrain: Mapping[str, Any], shape: Mapping[str, int]
) -> dict[str, Any]:
    """The fields of a cell stack's config (`enas_core.zoo.cell_stack.ImageNetConfig` and `cell`,
    the space's own fields) from a retrain section and the dataset's input shape. A drop-path
    keep of 1 (or none given) means no drop path (None).

    Raises:
        KeyError: the retrain section or the dataset shape lacks a needed key.
    """
    drop_path_keep = float(retrain.get("drop_path_keep", 1.0))
    return {
        "num_layers": int(retrain["num_layers"]),
        "channels": int(retrain["channels"]),
        **cell,
        **{key: shape[key] for key in IMAGE_INPUT_KEYS},
        "keep_prob": float(retrain["keep_prob"]),
        "aux_head": float(retrain.get("aux_weight", 0.0)) > 0,
        "drop_path_keep": drop_path_keep if drop_path_keep < 1.0 else None,
    }


def trainer_network(
    network_config: NetworkConfig, params: Mapping[str, int], cfg: Any, data: Any, drop_path_keep: float = 1.0
) -> dict[str, Any]:
    """A space's network shape (`network_config`) from a ChildConfig / RetrainConfig-like `cfg`
    and an ImageDataset-like `data`; `drop_path_keep` 1: no drop path (the shared model)."""
    section = {key: getattr(cfg, key) for key in STACK_KEYS}
    shape = {key: getattr(data, key) for key in IMAGE_INPUT_KEYS}
    return network_config(params, {**section, "drop_path_keep": drop_path_keep}, shape)
