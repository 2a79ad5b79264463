"""The torch-side pieces of a space, read from its plugin (`enas_core.spaces.get_plugin`).

* `shared_model(space)(space, child_cfg, data) -> nn.Module` with `forward(x, tokens)` and
  optionally `forward_aux(x, tokens) -> (logits, aux | None)` (image task);
* `final_model(space)(space, tokens, retrain_cfg, data) -> nn.Module` with `forward(x)`,
  optionally `forward_aux(x)` and `set_drop_path_progress(fraction)` (image task);
* `make_shared_trainer(space, cfg, data, seed, device)`: the plugin's `trainer`;
* `retrainer(space)`: the plugin's `retrainer`, or None (`enas_core.retrain.retrain_image`).

`SHARED_IMAGE_MODELS`, `FINAL_IMAGE_MODELS`, `SHARED_TRAINERS` and `RETRAINERS` hold overrides by
space name (empty by default; tests and experiments plug in, e.g. with `register_shared_trainer` /
`register_retrainer`): a value is the object itself or a "module:attribute" string imported on
first use. Without an override the plugin's entry is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from enas_core.spaces import Space, get_plugin, load

SHARED_IMAGE_MODELS: dict[str, Any] = {}
FINAL_IMAGE_MODELS: dict[str, Any] = {}
SHARED_TRAINERS: dict[str, Any] = {}
RETRAINERS: dict[str, Any] = {}


def resolve(entry: Any) -> Any:
    """An override or plugin value: the object itself, or a "module:attribute" string imported now.

    Raises:
        NotImplementedError: the module or attribute does not exist.
    """
    return load(entry) if isinstance(entry, str) else entry


def register_shared_trainer(space_name: str, factory: Any) -> None:
    """Plug in the shared trainer of a space: factory(space, cfg, data, seed, device)."""
    SHARED_TRAINERS[space_name] = factory


def register_retrainer(space_name: str, fn: Any) -> None:
    """Plug in the retraining of a space: fn(space, tokens, cfg, data, seed, device, on_epoch) -> dict."""
    RETRAINERS[space_name] = fn


def shared_model(space: Space) -> Callable[..., Any]:
    """The plugin's `build_shared(space, child_cfg, data)`.

    Raises:
        NotImplementedError: the space has no shared image model.
    """
    entry = SHARED_IMAGE_MODELS.get(space.name, get_plugin(space.name).shared_model)
    return _image_builder(entry, space, "shared image model")


def final_model(space: Space) -> Callable[..., Any]:
    """The plugin's `build_final(space, tokens, retrain_cfg, data)`.

    Raises:
        NotImplementedError: the space has no final image model.
    """
    entry = FINAL_IMAGE_MODELS.get(space.name, get_plugin(space.name).final_model)
    return _image_builder(entry, space, "final image model")


def _image_builder(entry: Any, space: Space, what: str) -> Callable[..., Any]:
    if entry is None:
        raise NotImplementedError(f"no {what} registered for space {space.name!r}")
    builder: Callable[..., Any] = resolve(entry)
    return builder


def retrainer(space: Space) -> Callable[..., dict[str, Any]] | None:
    """The space's retrainer (an override, else the plugin's), None for `retrain_image`."""
    entry = RETRAINERS.get(space.name, get_plugin(space.name).retrainer)
    if entry is None:
        return None
    fn: Callable[..., dict[str, Any]] = resolve(entry)
    return fn


def make_shared_trainer(space: Space, cfg: Any, data: Any, seed: int, device: str = "cpu") -> Any:
    """The shared trainer for `space` (its plugin's, unless overridden).

    Raises:
        NotImplementedError: the trainer is not importable.
    """
    factory = resolve(SHARED_TRAINERS.get(space.name, get_plugin(space.name).trainer))
    return factory(space, cfg, data, seed, device)
