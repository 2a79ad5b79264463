"""Size and cost of a network: parameter counts and multiply-accumulates (torch only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def count_parameters(module: nn.Module, exclude: str | None = None) -> int:
    """Number of parameters, optionally excluding those whose name starts with `exclude`."""
    return sum(
        p.numel() for name, p in module.named_parameters() if exclude is None or not name.startswith(exclude)
    )


@torch.no_grad()
def count_macs(module: nn.Module, example: Tensor) -> int:
    """Multiply-accumulates of one forward of `example` through the conv and linear layers,
    per input sample (hooks; the module is run in eval mode and restored)."""
    total = 0

    def hook(m: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            total += out[0].numel() * per_out
        elif isinstance(m, nn.Linear):
            total += out[0].numel() * m.in_features

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    was_training = module.training
    module.eval()
    try:
        module(example[:1])
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total
