"""The contract of one search space as the rest of the system sees it (standard library only).

A space lives in one folder under `enas_core/zoo/` whose `__init__.py` defines `PLUGIN`, a
`SpacePlugin`. Its fields name the space's pieces by "module:attribute" reference, imported on first
use (`load`), so naming a space imports neither torch nor the other spaces.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

TASKS = ("image", "language")


@dataclass(frozen=True)
class SpacePlugin:
    """One search space: what the rest of the system needs from it.

    Every `str` field below but `name` and `task` is a "module:attribute" reference.

    Attributes:
        name: the space's name in specs and genotypes ("micro").
        order: list position (micro 10, macro 20, rnn 30, nasnet 40).
        task: "image" or "language": datasets, trainer, configs and export inputs follow it.
        space: the `Space` subclass (a standard-library module).
        spec_params: the `child` spec keys that configure the space (e.g. ("num_nodes",)).
        default_preset: the preset a spec naming only the space gets (e.g. "demo-micro").
        presets: dict[str, dict]: preset name -> complete resolved spec (plain dicts, stdlib).
        network_config: (params, retrain_section, dataset_shape) -> dict, the final network's shape.
        draw: (space, tokens) -> list[enas_core.drawing.Column] (stdlib).
        text_lines: (structured) -> list[str], the genotype as text (stdlib).
        controller: the `enas_core.controller.Controller` subclass of the space (torch).
        export_modules: modules whose bodies, in order, make the standalone model.py (torch alone);
            the last one defines `build_model_from(genotype_dict, network)`.
        shared_model: image task: build_shared(space, child_cfg, data) -> shared-weight model.
        final_model: image task: build_final(space, tokens, retrain_cfg, data) -> final child.
        trainer: the shared trainer class: (space, cfg, data, seed, device).
        retrainer: (space, tokens, cfg, data, seed, device, on_epoch) -> dict; None: the image
            task's `enas_core.retrain.retrain_image`.
        known: dict[str, list[int]]: named genotypes (e.g. "nasnet-a"), shown by `enasctl spaces`.
    """

    name: str
    order: int
    task: str
    space: str
    spec_params: tuple[str, ...]
    default_preset: str
    presets: str
    network_config: str
    draw: str
    text_lines: str
    controller: str
    export_modules: tuple[str, ...]
    shared_model: str | None = None
    final_model: str | None = None
    trainer: str = "enas_core.image_trainer:SharedTrainer"
    retrainer: str | None = None
    known: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"space {self.name!r}: task must be one of {TASKS}, not {self.task!r}")
        if not self.export_modules:
            raise ValueError(f"space {self.name!r} names no export modules")

    @property
    def child_module(self) -> str:
        """The module defining the final child (`build_model_from`): the last export module."""
        return self.export_modules[-1]


def load(ref: str) -> Any:
    """The object a "module:attribute" reference names, imported now.

    Raises:
        NotImplementedError: the module or the attribute does not exist.
    """
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"plug-in {ref!r} is not available ({e})") from e
