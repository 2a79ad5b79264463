"""Search spaces (standard library only): the registry of the spaces and their common contract.

The spaces themselves live under `enas_core.zoo`, one folder each; this package discovers them:
every package under `enas_core.zoo` with a module-level `PLUGIN` (a `SpacePlugin`) is a space,
listed in `PLUGIN.order`. Adding a space is adding a folder there; nothing here changes.

* `get_space(name, **params)`: the configured space; `list_spaces()`: the names, in order;
* `get_plugin(name)` / `PLUGINS`: the plugins; `SPACES`: name -> `Space` subclass;
* `describe_all()`: every space described (GET /spaces, `enasctl spaces`), known genotypes included;
* `Space`, `Decision`, `GenotypeError` (`enas_core.spaces.base`): the contract of a space.

May import the standard library and `enas_core.spaces.*`, `enas_core.zoo.*` modules that do the same.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from enas_core.spaces.base import Decision, GenotypeError, Space
from enas_core.spaces.plugin import SpacePlugin, load

ZOO_PACKAGE = "enas_core.zoo"


@functools.cache
def _plugins() -> dict[str, SpacePlugin]:
    """Discover the space packages under `enas_core.zoo` (on first use, so that a zoo module can
    import `enas_core.spaces` without a cycle)."""
    zoo = importlib.import_module(ZOO_PACKAGE)
    found: list[SpacePlugin] = []
    for info in pkgutil.iter_modules(zoo.__path__, f"{ZOO_PACKAGE}."):
        if not info.ispkg:
            continue
        plugin = getattr(importlib.import_module(info.name), "PLUGIN", None)
        if isinstance(plugin, SpacePlugin):
            found.append(plugin)
    found.sort(key=lambda p: (p.order, p.name))
    names = [p.name for p in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two space plugins share a name: {names}")
    return {p.name: p for p in found}


@functools.cache
def _space_classes() -> dict[str, type[Space]]:
    return {name: load(p.space) for name, p in _plugins().items()}


def list_spaces() -> list[str]:
    """The names of the registered spaces, in plugin order."""
    return list(_plugins())


def get_plugin(name: str) -> SpacePlugin:
    """The plugin of the space `name`.

    Raises:
        GenotypeError: no such space.
    """
    plugin = _plugins().get(name)
    if plugin is None:
        raise GenotypeError(f"unknown search space {name!r} (choose from {', '.join(_plugins())})")
    return plugin


def get_space(name: str, **params: int) -> Space:
    """The configured space `name` (one of `list_spaces()`).

    Raises:
        GenotypeError: unknown name, unknown parameter or parameter out of range.
    """
    get_plugin(name)
    return _space_classes()[name](**params)


def describe_all() -> dict[str, dict[str, Any]]:
    """Every space at its default parameters (`Space.describe()`), plus ``"known"``: the named
    genotypes of its plugin (name -> tokens) where it has any."""
    described: dict[str, dict[str, Any]] = {}
    for name, plugin in _plugins().items():
        described[name] = get_space(name).describe()
        if plugin.known is not None:
            described[name]["known"] = {k: list(v) for k, v in load(plugin.known).items()}
    return described


def __getattr__(name: str) -> Any:
    # PLUGINS and SPACES are computed on first access (see `_plugins`)
    if name == "PLUGINS":
        return dict(_plugins())
    if name == "SPACES":
        return dict(_space_classes())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PLUGINS",
    "SPACES",
    "Decision",
    "GenotypeError",
    "Space",
    "SpacePlugin",
    "describe_all",
    "get_plugin",
    "get_space",
    "list_spaces",
    "load",
]
