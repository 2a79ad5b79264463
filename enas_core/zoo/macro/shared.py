"""The macro (whole-network) CNN's shared-weight search network and its builders.

Token layout (ENAS_SPEC 1(a), decoded by `enas_core.zoo.macro.space`): layer ``i`` emits
``[op, s_0 .. s_{i-1}]``; ``s_j = 1`` adds a skip connection from the OUTPUT OF LAYER ``j`` (the
stem is never a skip source, and ``s_{i-1}`` is a residual connection from the layer's own input).

Search layout (``SharedMacroNet``, and ``SearchMacroChild.from_shared``): constant width ``C``; a
conv op is 1x1 conv-BN-ReLU then kxk conv (or depthwise-separable) -BN-ReLU, a pool op 1x1
conv-BN-ReLU then a 3x3 stride-1 pool (ops by name from `SEARCH_OP_REGISTRY`); a layer ``i > 0``
ends with ``BN(out + sum of selected skips)``. The layer loop, the reductions and the final layout
are `enas_core.zoo.macro.child`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from enas_core.zoo.image_ops import FactorizedReduce, OpFactory, Pool, bn, create_op, he_init
from enas_core.zoo.macro.child import (
    MacroChild,
    MacroNet,
    conv,
    kxk_convs,
    macro_stem,
    op_registry,
    reduction_layers,
    run_layers,
)
from enas_core.zoo.macro.space import MACRO_OPS, MacroLayer, MacroSpace, parse_macro_tokens, skip_sources

NUM_MACRO_OPS = len(MACRO_OPS)


def _search_conv(kernel: int, separable: bool) -> OpFactory:
    def make(c: int, stride: int) -> nn.Module:
        return nn.Sequential(
            conv(c, c, 1), bn(c), nn.ReLU(), *kxk_convs(c, kernel, separable), bn(c), nn.ReLU()
        )

    return make


def _search_pool(kind: str) -> OpFactory:
    def make(c: int, stride: int) -> nn.Module:
        return nn.Sequential(conv(c, c, 1), bn(c), nn.ReLU(), Pool(kind))

    return make


SEARCH_OP_REGISTRY = op_registry(_search_conv, _search_pool)
"""The macro space's ops by name in the search layout: (channels, stride) -> module."""


class SearchSkipCombine(nn.Module):
    """Search-layout skip combination: BN(out + sum of selected)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = bn(channels)

    def forward(self, out: Tensor, chosen: list[Tensor]) -> Tensor:
        for skip in chosen:
            out = out + skip  # (B, C, H, W)
        return self.bn(out)


class SharedMacroNet(nn.Module):
    """All candidate weights of the macro space; ``forward(x, tokens)`` runs only the sampled path.

    Args:
        num_layers: L (the paper searches with 12).
        channels: the constant width C (36 in the paper).
        num_classes: classifier outputs.
        in_channels: image channels (3 for CIFAR-10).
        keep_prob: dropout keep probability before the classifier.
        num_ops: the first ``num_ops`` ops are candidates (``MacroSpace``'s ``num_ops``).
    """

    def __init__(
        self,
        num_layers: int = 12,
        channels: int = 36,
        num_classes: int = 10,
        in_channels: int = 3,
        keep_prob: float = 0.9,
        num_ops: int = NUM_MACRO_OPS,
    ) -> None:
        super().__init__()
        self.num_layers, self.channels, self.num_ops = num_layers, channels, num_ops
        self.num_classes, self.in_channels, self.keep_prob = num_classes, in_channels, keep_prob
        self.reductions = reduction_layers(num_layers)
        self.stem = macro_stem(in_channels, channels)
        self.branches = nn.ModuleList(
            nn.ModuleList(create_op(SEARCH_OP_REGISTRY, name, channels) for name in MACRO_OPS[:num_ops])
            for _ in range(num_layers)
        )
        self.skip_bn = nn.ModuleList(
            SearchSkipCombine(channels) if i > 0 else nn.Identity() for i in range(num_layers)
        )
        self.reduce = nn.ModuleDict(
            {f"{r}_{j}": FactorizedReduce(channels, channels) for r in self.reductions for j in range(r + 1)}
        )
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(channels, num_classes, bias=False)
        he_init(self)

    def parse(self, tokens: Sequence[int] | Tensor) -> list[MacroLayer]:
        """Per-layer decisions of ``tokens`` (validated for this network's L)."""
        return parse_macro_tokens(tokens, self.num_layers, self.num_ops)

    def branch(self, layer: int, op: int) -> nn.Module:
        """The candidate ``op`` of ``layer``."""
        candidates = self.branches[layer]
        assert isinstance(candidates, nn.ModuleList)
        return candidates[op]

    def forward(self, x: Tensor, tokens: Sequence[int] | Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` of the architecture ``tokens`` for images ``x`` ``(B, C_in, H, W)``."""
        arch = self.parse(tokens)
        h = self.stem(x)  # (B, C, H, W)
        h = run_layers(
            h,
            skip_sources(arch),
            self.reductions,
            apply_op=lambda i, inp: self.branch(i, arch[i].op)(inp),
            combine=lambda i, out, chosen: self.skip_bn[i](out, chosen),
            reduce=lambda r, j, o: self.reduce[f"{r}_{j}"](o),
        )
        h = h.mean(dim=(2, 3))  # (B, C)
        return self.classifier(self.dropout(h))  # (B, num_classes)

    def forward_aux(self, x: Tensor, tokens: Sequence[int] | Tensor) -> tuple[Tensor, None]:
        """``(logits, None)``: the macro space has no auxiliary head (same interface as the micro net)."""
        return self.forward(x, tokens), None


class SearchMacroChild(MacroNet):
    """A standalone network for one macro architecture in the search layout (constant width),
    built with ``from_shared`` to reproduce the shared network's outputs exactly."""

    layout = "search"

    def __init__(
        self,
        tokens: Sequence[int] | Tensor,
        num_layers: int,
        channels: int,
        *,
        num_classes: int,
        in_channels: int,
        keep_prob: float,
    ) -> None:
        arch = parse_macro_tokens(tokens, num_layers)
        super().__init__(
            skip_sources(arch),
            [channels] * num_layers,
            lambda i, width: create_op(SEARCH_OP_REGISTRY, MACRO_OPS[arch[i].op], width),
            lambda i, width: SearchSkipCombine(width),
            (in_channels, num_classes, keep_prob),
        )

    @classmethod
    def from_shared(cls, shared: SharedMacroNet, tokens: Sequence[int] | Tensor) -> SearchMacroChild:
        """A child holding copies of the shared weights (and BN statistics) on the path.

        ``from_shared(shared, t)(x)`` equals ``shared(x, t)`` in train and eval mode.
        """
        child = cls(
            tokens,
            shared.num_layers,
            shared.channels,
            num_classes=shared.num_classes,
            in_channels=shared.in_channels,
            keep_prob=shared.keep_prob,
        )
        arch = shared.parse(tokens)
        child.stem = copy.deepcopy(shared.stem)
        child.ops = nn.ModuleList(copy.deepcopy(shared.branch(i, layer.op)) for i, layer in enumerate(arch))
        child.combine = nn.ModuleList(copy.deepcopy(m) for m in shared.skip_bn)
        child.reduce = nn.ModuleDict({k: copy.deepcopy(shared.reduce[k]) for k in child.reduce})
        child.classifier = copy.deepcopy(shared.classifier)
        device = next(shared.parameters()).device
        return child.to(device).train(shared.training)


# --- builders (the plugin's; duck-typed configs: ChildConfig / RetrainConfig, ImageDataset) ----------


def build_shared(space: MacroSpace, cfg: Any, data: Any) -> SharedMacroNet:
    """The shared network of a ``MacroSpace``: L and the op count from the space, width from ``cfg``."""
    return SharedMacroNet(
        num_layers=space.num_layers,
        channels=cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
        num_ops=space.num_ops,
    )


def build_final(space: MacroSpace, tokens: Sequence[int], cfg: Any, data: Any) -> MacroChild:
    """The final-layout child of ``tokens``: L from the space (the genotype fixes it), first-stage
    width ``cfg.channels`` doubling at each reduction, dropout keep ``cfg.keep_prob``.

    Raises:
        GenotypeError: ``tokens`` is not a genotype of ``space``.
    """
    return MacroChild(
        space.structured(tokens),
        space.num_layers,
        cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
    )
