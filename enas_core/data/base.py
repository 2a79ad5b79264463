"""Image datasets, minibatch streams and augmentation shared by every image task.

Plug-in points:
* An image loader (digits, cifar10, synthetic-cifar) returns an `ImageDataset`: standardised
  float32 tensors (statistics from the TRAIN split only), a validation split carved from the
  training data, and the augmentation that is valid for it (`pad`, `flip`).
* A language-model loader returns a `CorpusDataset` (`enas_core.data.ptb`, `kind == "text"`).
* `enas_core.search.make_shared_trainer` dispatches on the SPACE name (micro/macro: image task,
  rnn: language-model task), never on the dataset type.

All randomness goes through an explicit `torch.Generator` (CPU); index tensors are moved to the
data's device, so data may live on the GPU.
"""

from __future__ import annotations

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

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.cursor = int(state["cursor"])


def iterate_in_order(n: int, batch_size: int) -> list[Tensor]:
    """Index tensors covering range(n) in order (last batch may be short): for full-split evaluation."""
    return [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randint(high, (n,), generator=generator).to(device)  # (n,)


def augment_batch(
    x: Tensor, generator: torch.Generator, pad: int = 0, flip: bool = False, cutout: int = 0
) -> Tensor:
    """Training augmentation of a standardised batch x (B, C, H, W), on x's device:
    zero-pad by `pad` and crop a random H x W window per image, flip half the images left-right
    when `flip`, then zero a `cutout` x `cutout` square centred at a random pixel (clipped)."""
    b, _, h, w = x.shape
    if pad > 0 or flip:
        padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
        oy = _randint(2 * pad + 1, b, generator, x.device)  # (B,)
        ox = _randint(2 * pad + 1, b, generator, x.device)  # (B,)
        cols = torch.arange(w, device=x.device).expand(b, w)  # (B, W)
        if flip:
            mirror = _randint(2, b, generator, x.device).bool()  # (B,)
            cols = torch.where(mirror[:, None], w - 1 - cols, cols)  # (B, W)
        rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = ox[:, None] + cols  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)
    if cutout > 0:
        cy = _randint(h, b, generator, x.device)  # (B,)
        cx = _randint(w, b, generator, x.device)  # (B,)
        ys = torch.arange(h, device=x.device)[None, :] - (cy[:, None] - cutout // 2)  # (B, H)
        xs = torch.arange(w, device=x.device)[None, :] - (cx[:, None] - cutout // 2)  # (B, W)
        hole = ((ys >= 0) & (ys < cutout))[:, :, None] & ((xs >= 0) & (xs < cutout))[:, None, :]  # (B, H, W)
        x = x.masked_fill(hole[:, None], 0.0)
    return x.contiguous()
