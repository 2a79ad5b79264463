"""Image datasets, minibatch streams and augmentation shared by every image task.

Plug-in points:
* An image loader (digits, cifar10, synthetic-cifar) returns an `ImageDataset`: standardised
  float32 tensors (statistics from the TRAIN split only), a validation split carved from the
  training data, and the augmentation that is valid for it (`pad`, `flip`).
* A language-model loader returns a `CorpusDataset` (`enas_core.data.ptb`, `kind == "text"`).
* `enas_core.registry.make_shared_trainer` dispatches on the SPACE name (micro/macro: image task,
  rnn: language-model task), never on the dataset type.

All randomness goes through an explicit `torch.Generator` (CPU): minibatch indices
(`BatchStream.take`) and augmentation parameters (`draw_augment`) are drawn on the host for a whole
run of steps at once and uploaded in one copy, so the data may live on the GPU and the training
loop never waits on the host; the same seed gives the same batches on every device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Three labelled image splits.

    Attributes:
        name: e.g. "digits", "cifar10".
        train_x, valid_x, test_x: float32 (N, in_channels, image_size, image_size), standardised
            with the train split's per-channel mean/std.
        train_y, valid_y, test_y: int64 (N,) labels in [0, num_classes - 1].
        pad: pad-and-random-crop margin used by training augmentation (0: none).
        flip: whether random horizontal flips are a valid augmentation (not for digits).
        mean, std: the per-channel statistics that were applied (informational).
    The test split is for final reporting only: nothing may be selected on it.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    valid_x: Tensor
    valid_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    in_channels: int
    image_size: int
    pad: int = 4
    flip: bool = True
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    kind: str = "image"

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y = self.split(split)
            expected = (self.in_channels, self.image_size, self.image_size)
            if x.dim() != 4 or tuple(x.shape[1:]) != expected or y.shape != (x.shape[0],):
                raise ValueError(
                    f"{self.name} {split}: expected x (N, {expected}) and y (N,), "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """(x, y) of "train" | "valid" | "test"."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def to(self, device: str | torch.device) -> ImageDataset:
        """A copy with every tensor on `device` (self when already there)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        moved = {f"{s}_{p}": getattr(self, f"{s}_{p}").to(device) for s in SPLITS for p in "xy"}
        fields = {k: getattr(self, k) for k in ("name", "num_classes", "in_channels", "image_size")}
        extra = {k: getattr(self, k) for k in ("pad", "flip", "mean", "std", "kind")}
        return ImageDataset(**moved, **fields, **extra)

    def describe(self) -> dict[str, Any]:
        """Sizes for logs and the API."""
        return {
            "name": self.name,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "image_shape": [self.in_channels, self.image_size, self.image_size],
            "sizes": {s: int(self.split(s)[1].shape[0]) for s in SPLITS},
        }


def standardise_splits(
    train: Tensor, *others: Tensor
) -> tuple[list[Tensor], tuple[float, ...], tuple[float, ...]]:
    """Per-channel (x - mean) / std with mean and std of `train` (N, C, H, W) only.

    Returns ([train, *others] standardised as float32, mean, std).
    """
    x = train.to(torch.float64)
    mean = x.mean(dim=(0, 2, 3))  # (C,)
    std = x.std(dim=(0, 2, 3), unbiased=False).clamp_min(1e-8)  # (C,)
    out = [
        ((t.to(torch.float64) - mean[None, :, None, None]) / std[None, :, None, None]).float()
        for t in (train, *others)
    ]
    return out, tuple(mean.tolist()), tuple(std.tolist())


def split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """A seeded permutation of range(n) cut into (train, valid, test) index tensors;
    `fractions` = (train, valid), the rest is test. Deterministic in `seed`."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = round(fractions[0] * n)
    n_valid = round(fractions[1] * n)
    return perm[:n_train], perm[n_train : n_train + n_valid], perm[n_train + n_valid :]


class BatchStream:
    """An endless stream of minibatch indices over range(n): a fresh seeded permutation per pass,
    full batches only (the tail of a pass is dropped; `batch_size` is clipped to n).

    `state_dict()` / `load_state_dict()` make a resumed stream continue bit-identically.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got {n}, {batch_size}")
        self.n, self.batch_size = n, min(batch_size, n)
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.cursor = 0

    @property
    def batches_per_pass(self) -> int:
        return self.n // self.batch_size

    def next(self) -> Tensor:
        """The next (batch_size,) int64 index tensor (CPU)."""
        if self.cursor + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def take(self, steps: int) -> Tensor:
        """The next `steps` batches as one (steps, batch_size) int64 tensor (CPU); the same
        indices as `steps` calls of `next()`."""
        if steps == 0:
            return torch.empty(0, self.batch_size, dtype=torch.long)
        return torch.stack([self.next() for _ in range(steps)])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.cursor = int(state["cursor"])


def iterate_in_order(n: int, batch_size: int) -> list[Tensor]:
    """Index tensors covering range(n) in order (last batch may be short): for full-split evaluation."""
    return [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@dataclass(frozen=True)
class AugmentDraw:
    """The random parameters of augmenting `steps` batches of `batch` images, each (steps, batch)
    int64: crop offsets `oy`, `ox` in [0, 2 pad], `mirror` in {0, 1}, cutout centres `cy`, `cx`
    (zeros where the augmentation is off). Row i augments the i-th batch (`row(i)`)."""

    oy: Tensor
    ox: Tensor
    mirror: Tensor
    cy: Tensor
    cx: Tensor

    def row(self, i: int) -> AugmentDraw:
        """The parameters of batch `i`, each (1, batch)."""
        return AugmentDraw(*(t[i : i + 1] for t in self.tensors()))

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.oy, self.ox, self.mirror, self.cy, self.cx

    def to(
        self, device: torch.device, move: Callable[[Tensor, torch.device], Tensor] | None = None
    ) -> AugmentDraw:
        """On `device` in one copy (`move(t, device)` does it; default `Tensor.to`)."""
        packed = torch.stack(self.tensors())  # (5, steps, batch)
        moved = packed.to(device) if move is None else move(packed, device)
        oy, ox, mirror, cy, cx = moved.unbind(0)
        return AugmentDraw(oy, ox, mirror, cy, cx)


def draw_augment(
    generator: torch.Generator,
    steps: int,
    batch: int,
    size: tuple[int, int],
    pad: int = 0,
    flip: bool = False,
    cutout: int = 0,
) -> AugmentDraw:
    """Draw the augmentation parameters of `steps` batches (CPU generator), batch by batch in the
    order one `augment_batch` call per batch would draw them."""
    h, w = size
    zeros = torch.zeros(batch, dtype=torch.long)
    rows: list[tuple[Tensor, ...]] = []
    for _ in range(steps):
        oy = ox = mirror = cy = cx = zeros
        if pad > 0 or flip:
            oy = torch.randint(2 * pad + 1, (batch,), generator=generator)  # (B,)
            ox = torch.randint(2 * pad + 1, (batch,), generator=generator)  # (B,)
            if flip:
                mirror = torch.randint(2, (batch,), generator=generator)  # (B,)
        if cutout > 0:
            cy = torch.randint(h, (batch,), generator=generator)  # (B,)
            cx = torch.randint(w, (batch,), generator=generator)  # (B,)
        rows.append((oy, ox, mirror, cy, cx))
    if not rows:
        empty = torch.zeros(0, batch, dtype=torch.long)
        return AugmentDraw(empty, empty, empty, empty, empty)
    return AugmentDraw(*(torch.stack(parts) for parts in zip(*rows, strict=True)))


def apply_augment(x: Tensor, draw: AugmentDraw, pad: int = 0, flip: bool = False, cutout: int = 0) -> Tensor:
    """Augment a standardised batch x (B, C, H, W) with one row of parameters (`draw` (1, B),
    on x's device): zero-pad by `pad` and crop an H x W window per image, mirror the images whose
    `mirror` is 1 when `flip`, then zero a `cutout` x `cutout` square centred at (cy, cx)
    (clipped at the border). Batched tensor ops only: no host synchronisation."""
    b, _, h, w = x.shape
    oy, ox, mirror, cy, cx = (t.reshape(b) for t in draw.tensors())  # (B,) each
    if pad > 0 or flip:
        padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
        cols = torch.arange(w, device=x.device).expand(b, w)  # (B, W)
        if flip:
            cols = torch.where(mirror.bool()[:, None], w - 1 - cols, cols)  # (B, W)
        rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = ox[:, None] + cols  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)
    if cutout > 0:
        ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - cutout // 2)  # (B, H)
        xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cutout // 2)  # (B, W)
        hole = ((ys >= 0) & (ys < cutout))[:, :, None] & ((xs >= 0) & (xs < cutout))[:, None, :]  # (B, H, W)
        x = x.masked_fill(hole[:, None], 0.0)
    return x.contiguous()


def augment_batch(
    x: Tensor, generator: torch.Generator, pad: int = 0, flip: bool = False, cutout: int = 0
) -> Tensor:
    """Training augmentation of one batch x (B, C, H, W) on x's device, parameters drawn from the
    CPU `generator` now: `apply_augment(x, draw_augment(generator, 1, B, ...))`."""
    draw = draw_augment(generator, 1, x.shape[0], (x.shape[2], x.shape[3]), pad, flip, cutout)
    return apply_augment(x, draw.to(x.device), pad, flip, cutout)
