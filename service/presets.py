"""Presets: complete resolved specs (``docs/INTERNALS.md``) that a submitted spec overrides.

Each space defines its own (its plugin's ``presets``, e.g. ``enas_core/zoo/micro/presets.py``);
this module gathers them, in plugin order (an override's rules: ``service.spec_sections``). ``paper-*``
carry the numbers of ENAS (Pham et al. 2018), ``demo-*`` finish on a 2-core CPU in minutes.
Plain dicts, standard library only (``enas_core.spaces``): the API reads them without torch.
"""

from __future__ import annotations

import copy
from typing import Any

from enas_core.spaces import get_plugin, list_spaces, load

SPACES: tuple[str, ...] = tuple(list_spaces())
IMAGE_DATASETS = ("digits", "cifar10", "synthetic-cifar")
TEXT_DATASETS = ("ptb", "synthetic-ptb")
TASK_DATASETS: dict[str, tuple[str, ...]] = {"image": IMAGE_DATASETS, "language": TEXT_DATASETS}
DEFAULT_PRESET: dict[str, str] = {name: get_plugin(name).default_preset for name in SPACES}
SECTIONS = ("controller", "child", "derive", "retrain", "resources")

PRESETS: dict[str, dict[str, Any]] = {
    name: preset for space in SPACES for name, preset in load(get_plugin(space).presets).items()
}


def datasets_for(space: str) -> tuple[str, ...]:
    """The datasets the space's task accepts."""
    return TASK_DATASETS[get_plugin(space).task]


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name`` (with ``"preset": name``). Raises KeyError when unknown."""
    preset = copy.deepcopy(PRESETS[name])
    preset["preset"] = name
    return preset


def list_presets() -> list[dict[str, Any]]:
    """Summaries for listings: name, space, dataset, epochs, first note."""
    return [
        {
            "name": name,
            "space": p["space"],
            "dataset": p["dataset"],
            "epochs": p["epochs"],
            "default_for_space": DEFAULT_PRESET[p["space"]] == name,
            "summary": p["notes"][0],
        }
        for name, p in PRESETS.items()
    ]
