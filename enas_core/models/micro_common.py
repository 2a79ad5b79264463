"""Shared pieces of the micro (cell) CNN models: the op ids, the network config, the stacking
(reduction and aux-head positions), the stem and the classifier head.

Stacking (both layouts): stem 3x3 conv to 3C + BN, then num_layers + 2 cells with reductions at
p and 2p + 1 (p = num_layers // 3); C doubles at each reduction; head ReLU -> global average
pool -> dropout -> FC (no bias). Optional auxiliary head after cell 2p + 2 (training only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.ops import bn

IDENTITY = 4
SEP_KERNELS = {0: 3, 1: 5}


@dataclass(frozen=True)
class MicroNetConfig:
    """Shape of a micro network. `keep_prob` is the dropout keep probability before the
    classifier; `drop_path_keep` (final layout only) the drop-path keep probability of the last
    cell at the end of training (None: no drop path)."""

    num_layers: int = 6
    channels: int = 20
    num_nodes: int = 5
    num_ops: int = 5
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    keep_prob: float = 1.0
    aux_head: bool = False
    drop_path_keep: float | None = None

    def __post_init__(self) -> None:
        if self.image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {self.image_size}")
        if self.channels % 2:
            raise ValueError(f"channels must be even (factorized reductions), got {self.channels}")


def reduction_layers(num_layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells among num_layers + 2 cells."""
    p = num_layers // 3
    return p, 2 * p + 1


def aux_layer(num_layers: int) -> int:
    """Index of the cell after which the auxiliary head reads (2p + 2)."""
    return reduction_layers(num_layers)[1] + 1


def split_cells(tokens: Sequence[int], num_nodes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal, reduce) cell tokens as plain ints (length-checked only: callers validate)."""
    t = tuple(int(v) for v in tokens)
    if len(t) != 8 * num_nodes:
        raise ValueError(f"micro genotype needs {8 * num_nodes} tokens, got {len(t)}")
    return t[: 4 * num_nodes], t[4 * num_nodes :]


def stem(config: MicroNetConfig) -> nn.Sequential:
    """3x3 conv to 3C channels + BN."""
    c = 3 * config.channels
    return nn.Sequential(nn.Conv2d(config.in_channels, c, 3, 1, 1, bias=False), bn(c))


def head(config: MicroNetConfig, classifier: nn.Module, x: Tensor, training: bool) -> Tensor:
    """ReLU -> global average pool -> dropout (keep_prob) -> classifier: logits (B, num_classes)."""
    x = F.relu(x).mean(dim=(2, 3))  # (B, C)
    x = F.dropout(x, 1.0 - config.keep_prob, training)
    return classifier(x)  # (B, num_classes)
