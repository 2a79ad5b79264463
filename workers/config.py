"""The resolved spec (a dict, ``docs/INTERNALS.md``) turned into the core's frozen configs.

Everything here is small, frozen and picklable: it is what the driver hands to Ray actors and
tasks (never sessions, clients or tensors). Datasets are referenced by name and loaded where they
are used (`DatasetRef.load`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from enas_core.configs import ChildConfig, ControllerTrainConfig, RetrainConfig
from enas_core.controller import ControllerConfig
from enas_core.spaces import Space, get_plugin, get_space

FILE_DATASETS = frozenset({"cifar10", "ptb"})
"""Datasets read from a folder (``spec["data_dir"]`` or ``<settings.data_dir>/<dataset>``)."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by name; loaded by whoever needs it (the shared-model actor, a retrain task)."""

    name: str
    data_dir: str | None
    seed: int

    def load(self) -> Any:
        """Load it with `enas_core.data.loading.load_dataset`.

        Raises:
            enas_core.data.loading.DatasetError: unknown name, missing or malformed files.
        """
        from enas_core.data.loading import load_dataset

        return load_dataset(self.name, self.data_dir, self.seed)


Custom = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Resources:
    """Ray resources of a search's roles. The shared-model actor and each retrain task get
    ``num_cpus`` and ``num_gpus``; the controller the same CPUs and no GPU. Each role also asks
    for its custom resources (``shared``, ``controller``, ``retrain``: Ray custom resource name ->
    amount), which places it on the nodes that offer them. ``device`` is what the trainers are
    given (``auto``: CUDA when the process sees a GPU)."""

    num_cpus: float
    num_gpus: float
    device: str
    shared: Custom = ()
    controller: Custom = ()
    retrain: Custom = ()

    def shared_options(self) -> dict[str, Any]:
        """Ray ``.options(...)`` of the shared-model actor."""
        return _options(self.num_cpus, self.num_gpus, self.shared)

    def controller_options(self) -> dict[str, Any]:
        """Ray ``.options(...)`` of the controller actor (never a GPU: it is a small LSTM)."""
        return _options(self.num_cpus, 0.0, self.controller)

    def retrain_options(self) -> dict[str, Any]:
        """Ray ``.options(...)`` of each retraining task."""
        return _options(self.num_cpus, self.num_gpus, self.retrain)


def _options(num_cpus: float, num_gpus: float, custom: Custom) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus}
    if custom:
        options["resources"] = dict(custom)
    return options


def _custom(given: Any) -> Custom:
    return tuple(sorted((str(name), float(amount)) for name, amount in dict(given or {}).items()))


@dataclass(frozen=True)
class SearchPlan:
    """Everything one search run needs, built from its resolved spec by `build_plan`."""

    space_name: str
    space_params: tuple[tuple[str, int], ...]
    dataset: DatasetRef
    epochs: int
    seed: int
    controller: ControllerConfig
    controller_train: ControllerTrainConfig
    child: Any  # ChildConfig (image task) or the language model's config (language task)
    retrain: Any  # RetrainConfig (image task) or the language model's retrain config (language task)
    retrain_enabled: bool
    retrain_top_k: int
    derive_num_samples: int
    derive_top_k: int
    resources: Resources

    def space(self) -> Space:
        """The configured search space (rebuilt wherever it is needed; cheap)."""
        return get_space(self.space_name, **dict(self.space_params))


def build_plan(spec: Mapping[str, Any], *, data_root: Path | str | None = None) -> SearchPlan:
    """Build the run plan of a resolved spec.

    Args:
        spec: the resolved spec stored with the search (every section present).
        data_root: the worker's ``settings.data_dir``; file datasets without an explicit
            ``data_dir`` are read from ``<data_root>/<dataset>``.
    Raises:
        KeyError: a section or key the resolved spec must have is missing.
        enas_core.spaces.GenotypeError: space parameters out of range.
        ValueError: a value the core's configs reject.
    """
    space_name = str(spec["space"])
    child_section = dict(spec["child"])
    # the child settings that configure the space itself (the rest keep the space's defaults)
    spec_params = get_plugin(space_name).spec_params
    params = {k: int(child_section[k]) for k in spec_params if k in child_section}
    get_space(space_name, **params)  # validate early, in the driver
    retrain_section = dict(spec["retrain"])
    resources = dict(spec["resources"])
    seed = int(spec["seed"])
    return SearchPlan(
        space_name=space_name,
        space_params=tuple(sorted(params.items())),
        dataset=DatasetRef(str(spec["dataset"]), _data_dir(spec, data_root), seed),
        epochs=int(spec["epochs"]),
        seed=seed,
        controller=ControllerConfig.from_dict(spec["controller"]),
        controller_train=ControllerTrainConfig.from_dict(spec["controller"]),
        child=_child_config(space_name, child_section),
        retrain=_retrain_config(space_name, retrain_section),
        retrain_enabled=bool(retrain_section.get("enabled", True)),
        retrain_top_k=int(retrain_section.get("top_k", 1)),
        derive_num_samples=int(spec["derive"]["num_samples"]),
        derive_top_k=int(spec["derive"]["top_k"]),
        resources=Resources(
            num_cpus=float(resources.get("num_cpus", 1.0)),
            num_gpus=float(resources.get("num_gpus", 0.0)),
            device=str(resources.get("device", "auto")),
            shared=_custom(resources.get("shared")),
            controller=_custom(resources.get("controller")),
            retrain=_custom(resources.get("retrain")),
        ),
    )


def _data_dir(spec: Mapping[str, Any], data_root: Path | str | None) -> str | None:
    given = spec.get("data_dir")
    if given:
        return str(Path(given).expanduser())
    if spec["dataset"] in FILE_DATASETS and data_root is not None:
        return str(Path(data_root) / str(spec["dataset"]))
    return None


def _child_config(space_name: str, section: dict[str, Any]) -> Any:
    if get_plugin(space_name).task == "language":
        from enas_core.lm import LMConfig

        return LMConfig.from_dict(section)
    return ChildConfig.from_dict(section)


def _retrain_config(space_name: str, section: dict[str, Any]) -> Any:
    if get_plugin(space_name).task == "language":
        from enas_core.lm import LMRetrainConfig

        return _from_known_fields(LMRetrainConfig, section)
    return RetrainConfig.from_dict(section)


def _from_known_fields(cls: type, section: Mapping[str, Any]) -> Any:
    """``cls.from_dict(section)`` when the class has one, else its known fields only."""
    if hasattr(cls, "from_dict"):
        return cls.from_dict(section)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in section.items() if k in names})
