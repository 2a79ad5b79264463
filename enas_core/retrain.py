"""Training a derived architecture from scratch (the final model), and its evaluation.

`retrain` dispatches on the space: its plugin's retrainer (the language model for the language
task), else `retrain_image` (the image task). Same GPU path as the shared trainer: each epoch's
minibatches and augmentation are drawn on the host and uploaded once, the steps run without a
host synchronisation, the epoch's loss and accuracy are read once at its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from enas_core.configs import RetrainConfig
from enas_core.data.base import AugmentDraw, BatchStream, ImageDataset, apply_augment, draw_augment
from enas_core.image_trainer import forward_aux, sgd_step
from enas_core.measure import count_macs, count_parameters
from enas_core.registry import final_model, retrainer
from enas_core.runtime import (
    PrivateRng,
    autocast,
    make_sgd,
    memory_format,
    resolve_device,
    sgdr_lr,
    subseed,
    upload,
)
from enas_core.spaces import Space

OnEpoch = Callable[[dict[str, Any]], None]


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    batch_size: int = 500,
    precision: str = "fp32",
    channels_last: bool = False,
) -> float:
    """Accuracy of `model` (eval mode) on (x, y), in order; one host synchronisation."""
    model.eval()
    fmt = memory_format(channels_last)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(y), batch_size):
        with autocast(x.device, precision):
            logits = model(x[start : start + batch_size].contiguous(memory_format=fmt))  # (b, num_classes)
        correct += (logits.argmax(dim=1) == y[start : start + batch_size]).sum()
    return int(correct) / max(1, len(y))


def retrain(
    space: Space,
    tokens: Sequence[int],
    cfg: Any,
    data: Any,
    seed: int,
    device: str = "cpu",
    on_epoch: OnEpoch | None = None,
) -> dict[str, Any]:
    """Train the standalone child of `tokens` from scratch (dispatches on the space; image
    spaces: `retrain_image`)."""
    fn = retrainer(space)
    if fn is not None:
        return fn(space, tokens, cfg, data, seed, device, on_epoch)
    return retrain_image(space, tokens, cfg, data, seed, device, on_epoch)


def _train_epoch(
    child: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: RetrainConfig,
    data: ImageDataset,
    idx: Tensor,
    draw: AugmentDraw,
    progress: tuple[int, int],
) -> tuple[Tensor, Tensor]:
    """The steps of one epoch (idx (S, B) and draw on the device); no host synchronisation.
    `progress` = (steps done before this epoch, total steps) for drop path. Returns the summed
    loss and correct count as device scalars."""
    child.train()
    fmt = memory_format(cfg.channels_last)
    device = data.train_x.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    done, total = progress
    set_progress = getattr(child, "set_drop_path_progress", None)
    for step in range(idx.shape[0]):
        if set_progress is not None:
            set_progress((done + step + 1) / total)
        x = apply_augment(data.train_x[idx[step]], draw.row(step), data.pad, data.flip, cfg.cutout)
        y = data.train_y[idx[step]]  # (B,)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, cfg.precision):
            out = forward_aux(child, x.contiguous(memory_format=fmt))
        loss_sum += sgd_step(child, optimizer, out, y, cfg.aux_weight, cfg.l2, cfg.grad_clip)
        correct += (out[0].detach().argmax(dim=1) == y).sum()
    return loss_sum, correct


def retrain_image(
    space: Space,
    tokens: Sequence[int],
    cfg: RetrainConfig,
    data: ImageDataset,
    seed: int,
    device: str = "cpu",
    on_epoch: OnEpoch | None = None,
) -> dict[str, Any]:
    """Final-layout child trained for cfg.epochs on the TRAIN split (SGDR, Nesterov, L2, clip,
    aux head, drop path); validation accuracy per epoch is reported, never used to select;
    the test split is evaluated once, at the end.

    Returns {"test_accuracy", "valid_accuracy", "params", "params_without_aux", "macs",
    "epochs", "seconds", "curve": [per-epoch dicts], "model": the trained nn.Module}.
    """
    dev = resolve_device(device)
    data = data.to(dev)
    fmt = memory_format(cfg.channels_last)
    rng = PrivateRng(subseed(seed, "retrain-global"), dev)
    build = final_model(space)
    with rng.scope():
        child = build(space, tokens, cfg, data).to(dev, memory_format=fmt)
    optimizer = make_sgd(child.parameters(), cfg.lr_max, cfg.momentum, cfg.nesterov, dev)
    stream = BatchStream(len(data.train_y), cfg.batch_size, subseed(seed, "retrain-batches"))
    augment_generator = torch.Generator().manual_seed(subseed(seed, "retrain-augment"))
    steps = cfg.steps_per_epoch or stream.batches_per_pass
    size = (data.image_size, data.image_size)
    curve: list[dict[str, Any]] = []
    begin = time.perf_counter()
    for epoch in range(cfg.epochs):
        lr = sgdr_lr(epoch, cfg.lr_max, cfg.lr_min, cfg.sgdr_t0, cfg.sgdr_tmul)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = stream.take(steps)  # (S, B)
        draw = draw_augment(augment_generator, steps, idx.shape[1], size, data.pad, data.flip, cfg.cutout)
        with rng.scope():
            loss_sum, correct = _train_epoch(
                child,
                optimizer,
                cfg,
                data,
                upload(idx, dev),
                draw.to(dev, upload),
                (epoch * steps, cfg.epochs * steps),
            )
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": float(loss_sum) / steps,
            "train_accuracy": int(correct) / (steps * stream.batch_size),
            "valid_accuracy": evaluate_accuracy(
                child, data.valid_x, data.valid_y, precision=cfg.precision, channels_last=cfg.channels_last
            ),
            "seconds": time.perf_counter() - begin,
        }
        curve.append(row)
        if on_epoch is not None:
            on_epoch(row)
    test_accuracy = evaluate_accuracy(
        child, data.test_x, data.test_y, precision=cfg.precision, channels_last=cfg.channels_last
    )
    return {
        "test_accuracy": test_accuracy,
        "valid_accuracy": curve[-1]["valid_accuracy"] if curve else None,
        "params": count_parameters(child),
        "params_without_aux": sum(p.numel() for n, p in child.named_parameters() if ".aux." not in f".{n}"),
        "macs": count_macs(child, data.valid_x[:1]),
        "epochs": cfg.epochs,
        "seconds": time.perf_counter() - begin,
        "curve": curve,
        "model": child.eval(),
    }
