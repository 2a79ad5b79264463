"""The macro (whole-network) CNN space: the shared search network and the standalone child.

Token layout (ENAS_SPEC 1(a)): layer ``i`` (0-based) emits ``[op, s_0 .. s_{i-1}]``; ``s_j = 1`` adds
a skip connection from the OUTPUT OF LAYER ``j`` (0-based; the stem is never a skip source, and
``s_{i-1}`` is a residual connection from the layer's own input). Ops: 0 conv3x3, 1 sep3x3,
2 conv5x5, 3 sep5x5, 4 avgpool3x3, 5 maxpool3x3.

Two layouts:
- search (``SharedMacroNet``, and ``MacroChild.from_shared``): constant width ``C``; a conv branch is
  1x1 conv-BN-ReLU then kxk conv (or depthwise-separable) -BN-ReLU; a pool branch 1x1 conv-BN-ReLU then
  a 3x3 stride-1 pool; a layer ``i > 0`` ends with ``BN(out + sum of selected skips)``.
- final (``MacroChild(..., layout="final")``): an op is ReLU-1x1-BN then ReLU-kxk-BN (pools:
  ReLU-1x1-BN then the pool); a layer ``i > 0`` ends with ``concat(selected skips, out)`` -> ReLU -> 1x1
  -> BN; the width doubles at each reduction.

Reductions follow layers ``L//3 - 1`` and ``2*(L//3) - 1``: every earlier output that is still needed is
passed through a factorized reduction (path-only: outputs no later layer reads are not reduced).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enas_core.ops import FactorizedReduce, Pool, bn, he_init
from enas_core.spaces import MACRO_OPS, GenotypeError

NUM_MACRO_OPS = len(MACRO_OPS)


class MacroLayer(NamedTuple):
    """One layer's decisions: the op id and one 0/1 flag per earlier layer."""

    op: int
    skips: tuple[int, ...]


def num_macro_tokens(num_layers: int) -> int:
    """Length of a macro token list: ``L + L(L-1)/2``."""
    return num_layers + num_layers * (num_layers - 1) // 2


def reduction_layers(num_layers: int) -> tuple[int, ...]:
    """Layers after which the resolution halves: ``L//3 - 1`` and ``2*(L//3) - 1`` (none when L < 3)."""
    p = num_layers // 3
    return tuple(sorted({r for r in (p - 1, 2 * p - 1) if 0 <= r < num_layers}))


def parse_macro_tokens(
    tokens: Sequence[int] | Tensor, num_layers: int, num_ops: int = NUM_MACRO_OPS
) -> list[MacroLayer]:
    """Split a flat token list into per-layer decisions.

    Raises:
        GenotypeError: wrong length, an op outside [0, num_ops-1] or a skip flag not 0/1 (names the position).
    """
    flat = [int(t) for t in (tokens.tolist() if isinstance(tokens, Tensor) else tokens)]
    expected = num_macro_tokens(num_layers)
    if len(flat) != expected:
        raise GenotypeError(f"macro tokens: expected {expected} for {num_layers} layers, got {len(flat)}")
    layers: list[MacroLayer] = []
    pos = 0
    for i in range(num_layers):
        op, skips = flat[pos], tuple(flat[pos + 1 : pos + 1 + i])
        if not 0 <= op < num_ops:
            msg = f"macro tokens: position {pos} (layer {i} op) is {op}, not in [0, {num_ops - 1}]"
            raise GenotypeError(msg, pos)
        for j, s in enumerate(skips):
            if s not in (0, 1):
                where = pos + 1 + j
                msg = f"macro tokens: position {where} (layer {i} skip {j}) is {s}, not 0/1"
                raise GenotypeError(msg, where)
        layers.append(MacroLayer(op, skips))
        pos += 1 + i
    return layers


def _live_after(arch: Sequence[MacroLayer], layer: int) -> set[int]:
    """Outputs (layer ids <= ``layer``) that a later layer reads: the next input and its skip sources."""
    live = {layer}
    for later in arch[layer + 1 :]:
        live.update(j for j, s in enumerate(later.skips) if s and j <= layer)
    return live


# --- building blocks -------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, k: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)


def _kxk(channels: int, op: int) -> list[nn.Module]:
    """The kxk part of a conv op: a plain conv or depthwise kxk followed by pointwise 1x1."""
    k = 3 if op in (0, 1) else 5
    if op in (1, 3):
        return [_conv(channels, channels, k, groups=channels), _conv(channels, channels, 1)]
    return [_conv(channels, channels, k)]


def _pool(op: int) -> nn.Module:
    return Pool(2 if op == 4 else 3)  # ops.Pool kinds: 2 average (padding excluded), 3 max


def search_branch(op: int, channels: int) -> nn.Sequential:
    """Search-layout branch: 1x1-BN-ReLU, then kxk(-sep)-BN-ReLU or a 3x3 stride-1 pool."""
    head: list[nn.Module] = [_conv(channels, channels, 1), bn(channels), nn.ReLU()]
    if op >= 4:
        return nn.Sequential(*head, _pool(op))
    return nn.Sequential(*head, *_kxk(channels, op), bn(channels), nn.ReLU())


def final_branch(op: int, channels: int) -> nn.Sequential:
    """Final-layout op: ReLU-1x1-BN, then ReLU-kxk(-sep)-BN or a 3x3 stride-1 pool."""
    head: list[nn.Module] = [nn.ReLU(), _conv(channels, channels, 1), bn(channels)]
    if op >= 4:
        return nn.Sequential(*head, _pool(op))
    return nn.Sequential(*head, nn.ReLU(), *_kxk(channels, op), bn(channels))


class FinalSkipCombine(nn.Module):
    """Final-layout skip combination: concat(selected, out) -> ReLU -> 1x1 -> BN."""

    def __init__(self, num_inputs: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_inputs * channels, channels, 1, bias=False)
        self.bn = bn(channels)

    def forward(self, out: Tensor, chosen: list[Tensor]) -> Tensor:
        x = torch.cat([*chosen, out], dim=1)  # (B, (k+1)C, H, W)
        return self.bn(self.conv(F.relu(x)))  # (B, C, H, W)


class SearchSkipCombine(nn.Module):
    """Search-layout skip combination: BN(out + sum of selected)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = bn(channels)

    def forward(self, out: Tensor, chosen: list[Tensor]) -> Tensor:
        for skip in chosen:
            out = out + skip  # (B, C, H, W)
        return self.bn(out)


def _stem(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(_conv(in_channels, channels, 3), bn(channels))


def _run_layers(
    x: Tensor,
    arch: Sequence[MacroLayer],
    reductions: Sequence[int],
    apply_op: Callable[[int, Tensor], Tensor],
    combine: Callable[[int, Tensor, list[Tensor]], Tensor],
    reduce: Callable[[int, int, Tensor], Tensor],
) -> Tensor:
    """The layer loop both layouts share: op on the previous output, skips, then reductions."""
    outputs: list[Tensor | None] = []
    inp = x
    for i, layer in enumerate(arch):
        out = apply_op(i, inp)  # (B, C, H, W)
        if i > 0:
            chosen = [outputs[j] for j, s in enumerate(layer.skips) if s]
            assert all(c is not None for c in chosen), "a skip source was dropped at a reduction"
            out = combine(i, out, chosen)  # type: ignore[arg-type]
        outputs.append(out)
        if i in reductions:
            live = _live_after(arch, i)
            outputs = [
                reduce(i, j, o) if j in live and o is not None else None for j, o in enumerate(outputs)
            ]
        inp = outputs[-1]  # type: ignore[assignment]  # the last output is always live
    return inp


# --- the shared (search) network ---------------------------------------------------------------------


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
        self.stem = _stem(in_channels, channels)
        self.branches = nn.ModuleList(
            nn.ModuleList(search_branch(op, channels) for op in range(num_ops)) for _ in range(num_layers)
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
        h = _run_layers(
            h,
            arch,
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


# --- the standalone child ----------------------------------------------------------------------------


class MacroChild(nn.Module):
    """A standalone network for one macro architecture.

    Args:
        tokens: the architecture (flat token list).
        num_layers: L.
        channels: width of the first stage; doubles at each reduction in the final layout
            (constant in the search layout).
        layout: ``"final"`` (retraining/export) or ``"search"`` (the shared network's layout; built
            with ``from_shared`` to reproduce the shared network's outputs exactly).
    """

    def __init__(
        self,
        tokens: Sequence[int] | Tensor,
        num_layers: int,
        channels: int,
        num_classes: int = 10,
        in_channels: int = 3,
        keep_prob: float = 0.5,
        layout: str = "final",
    ) -> None:
        super().__init__()
        if layout not in ("final", "search"):
            raise ValueError(f"layout must be 'final' or 'search', not {layout!r}")
        self.arch = parse_macro_tokens(tokens, num_layers)
        self.tokens = [t for layer in self.arch for t in (layer.op, *layer.skips)]
        self.num_layers, self.layout = num_layers, layout
        self.reductions = reduction_layers(num_layers)
        widths = self._widths(channels)
        self.stem = _stem(in_channels, channels)
        make_op = final_branch if layout == "final" else search_branch
        self.ops = nn.ModuleList(make_op(layer.op, widths[i]) for i, layer in enumerate(self.arch))
        self.combine = nn.ModuleList(self._combiner(i, widths[i]) for i in range(num_layers))
        self.reduce = nn.ModuleDict(
            {
                f"{r}_{j}": FactorizedReduce(widths[r], widths[r + 1])  # r < L-1 always
                for r in self.reductions
                for j in sorted(_live_after(self.arch, r))
            }
        )
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.classifier = nn.Linear(widths[-1], num_classes, bias=False)
        he_init(self)

    def _widths(self, channels: int) -> list[int]:
        """Width of each layer: doubling after each reduction (final layout only)."""
        widths, c = [], channels
        for i in range(self.num_layers):
            widths.append(c)
            if self.layout == "final" and i in self.reductions:
                c *= 2
        return widths

    def _combiner(self, i: int, width: int) -> nn.Module:
        if i == 0:
            return nn.Identity()
        if self.layout == "search":
            return SearchSkipCombine(width)
        return FinalSkipCombine(sum(self.arch[i].skips) + 1, width)

    @classmethod
    def from_shared(cls, shared: SharedMacroNet, tokens: Sequence[int] | Tensor) -> MacroChild:
        """A search-layout child holding copies of the shared weights (and BN statistics) on the path.

        ``from_shared(shared, t)(x)`` equals ``shared(x, t)`` in train and eval mode.
        """
        child = cls(
            tokens,
            shared.num_layers,
            shared.channels,
            num_classes=shared.num_classes,
            in_channels=shared.in_channels,
            keep_prob=shared.keep_prob,
            layout="search",
        )
        child.stem = copy.deepcopy(shared.stem)
        child.ops = nn.ModuleList(
            copy.deepcopy(shared.branch(i, layer.op)) for i, layer in enumerate(child.arch)
        )
        child.combine = nn.ModuleList(copy.deepcopy(m) for m in shared.skip_bn)
        child.reduce = nn.ModuleDict({k: copy.deepcopy(shared.reduce[k]) for k in child.reduce})
        child.classifier = copy.deepcopy(shared.classifier)
        device = next(shared.parameters()).device
        return child.to(device).train(shared.training)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` for images ``x`` ``(B, C_in, H, W)``."""
        h = self.stem(x)  # (B, C, H, W)
        h = _run_layers(
            h,
            self.arch,
            self.reductions,
            apply_op=lambda i, inp: self.ops[i](inp),
            combine=lambda i, out, chosen: self.combine[i](out, chosen),
            reduce=lambda r, j, o: self.reduce[f"{r}_{j}"](o),
        )
        h = h.mean(dim=(2, 3))  # (B, C_last)
        return self.classifier(self.dropout(h))  # (B, num_classes)

    def forward_aux(self, x: Tensor) -> tuple[Tensor, None]:
        """``(logits, None)``: no auxiliary head in the macro space."""
        return self.forward(x), None

    def set_drop_path_progress(self, fraction: float) -> None:
        """No drop path in the macro space (kept for the trainer's common interface)."""

    def num_parameters(self, include_aux: bool = True) -> int:
        """Number of parameters (there is no auxiliary head to exclude)."""
        return sum(p.numel() for p in self.parameters())


# --- builders (enas_core.registry; duck-typed configs: ChildConfig / RetrainConfig, ImageDataset) ----


def build_shared(space: Any, cfg: Any, data: Any) -> SharedMacroNet:
    """The shared network of a ``MacroSpace``: L and the op count from the space, width from ``cfg``."""
    return SharedMacroNet(
        num_layers=space.num_layers,
        channels=cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
        num_ops=space.num_ops,
    )


def build_final(space: Any, tokens: Sequence[int], cfg: Any, data: Any) -> MacroChild:
    """The final-layout child of ``tokens``: L from the space (the genotype fixes it), first-stage
    width ``cfg.channels`` doubling at each reduction, dropout keep ``cfg.keep_prob``."""
    space.validate(list(tokens))
    return MacroChild(
        tokens,
        space.num_layers,
        cfg.channels,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        keep_prob=cfg.keep_prob,
        layout="final",
    )
