"""Plug-in registries, keyed by SPACE name (not by dataset type).

* `SHARED_IMAGE_MODELS[name](space, child_cfg, data) -> nn.Module` with `forward(x, tokens)` and
  optionally `forward_aux(x, tokens) -> (logits, aux | None)`.
* `FINAL_IMAGE_MODELS[name](space, tokens, retrain_cfg, data) -> nn.Module` with `forward(x)`,
  optionally `forward_aux(x)` and `set_drop_path_progress(fraction)`.
* `SHARED_TRAINERS[name](space, cfg, data, seed, device)` -> an object with the
  `enas_core.image_trainer.SharedTrainer` methods (`SharedTrainerLike`).
* `RETRAINERS[name](space, tokens, cfg, data, seed, device, on_epoch) -> dict`; a space without
  one is retrained by `enas_core.retrain.retrain_image`.

A value is the object itself or a "module:attribute" string imported on first use, so naming a
space never imports the others' code (the language model lives in `enas_core.lm`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from enas_core.spaces import Space

SHARED_IMAGE_MODELS: dict[str, Any] = {
    "micro": "enas_core.models.micro:build_shared",
    "macro": "enas_core.models.macro:build_shared",
}
FINAL_IMAGE_MODELS: dict[str, Any] = {
    "micro": "enas_core.models.micro:build_final",
    "macro": "enas_core.models.macro:build_final",
}
SHARED_TRAINERS: dict[str, Any] = {
    "micro": "enas_core.image_trainer:SharedTrainer",
    "macro": "enas_core.image_trainer:SharedTrainer",
    "rnn": "enas_core.lm:LMSharedTrainer",
}
RETRAINERS: dict[str, Any] = {"rnn": "enas_core.lm:retrain_lm"}  # image spaces: retrain_image


def resolve(entry: Any) -> Any:
    """A registry value: the object itself, or a "module:attribute" string imported now.

    Raises:
        NotImplementedError: the module or attribute does not exist.
    """
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"plug-in {entry!r} is not available ({e})") from e


def registry_get(registry: Mapping[str, Any], space: Space, what: str) -> Any:
    """The resolved entry of `space` in `registry`.

    Raises:
        NotImplementedError: nothing registered (or importable) for the space.
    """
    if space.name not in registry:
        raise NotImplementedError(f"no {what} registered for space {space.name!r}")
    return resolve(registry[space.name])


def register_shared_trainer(space_name: str, factory: Any) -> None:
    """Plug in the shared trainer of a space: factory(space, cfg, data, seed, device)."""
    SHARED_TRAINERS[space_name] = factory


def register_retrainer(space_name: str, fn: Any) -> None:
    """Plug in the retraining of a space: fn(space, tokens, cfg, data, seed, device, on_epoch) -> dict."""
    RETRAINERS[space_name] = fn


def make_shared_trainer(space: Space, cfg: Any, data: Any, seed: int, device: str = "cpu") -> Any:
    """The shared trainer for `space` (image task for micro/macro, language model for rnn).

    Raises:
        NotImplementedError: no trainer registered (or importable) for the space.
    """
    factory = registry_get(SHARED_TRAINERS, space, "shared trainer")
    return factory(space, cfg, data, seed, device)
