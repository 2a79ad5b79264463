"""What a user submits (:class:`SearchSpec`) and what is stored and run (:func:`resolve_spec`).

A spec names a space and optionally a preset (default ``demo-<space>``), a dataset, epochs, a seed,
and per-section overrides. Each section is typed (``service.spec_sections``: per-key types and
bounds); every override key must also exist in the chosen preset's section (a space lacks some);
the error names the field (``["child", "foo"]`` in pydantic's location, so the API answers 422 with
``field: "child.foo"``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service import presets
from service.errors import InvalidInput
from service.spec_sections import (
    WHOLE,
    ChildSection,
    ControllerSection,
    DeriveSection,
    ResourcesSection,
    RetrainSection,
)


def _known_space(name: str) -> str:
    if name not in presets.SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(presets.SPACES)}")
    return name


# the registered spaces (enas_core.spaces: one folder each under enas_core/zoo/)
Space = Annotated[str, AfterValidator(_known_space), Field(json_schema_extra={"enum": list(presets.SPACES)})]
Dataset = Literal["digits", "cifar10", "synthetic-cifar", "ptb", "synthetic-ptb"]

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
LAYOUTS = {
    "cifar10": f"a {CIFAR_FOLDER} folder (or its parent) holding the python-pickle batches "
    f"{', '.join(CIFAR_FILES)}",
    "ptb": f"a folder holding {', '.join(PTB_FILES)} (one sentence a line, words separated by spaces)",
}


def _choices_schema() -> dict[str, Any]:
    """The space, preset and dataset combinations the validator accepts, as JSON Schema (``anyOf``),
    so the published schema says that one of space or preset is needed, which go together and
    which section keys each space has."""
    branches: list[dict[str, Any]] = []
    for space in presets.SPACES:
        names = [name for name, preset in presets.PRESETS.items() if preset["space"] == space]
        datasets = {"enum": [*presets.datasets_for(space), None]}
        # the keys of each section this space has (every preset of a space has the same keys)
        keys = {
            s: {"propertyNames": {"enum": sorted(presets.PRESETS[names[0]][s])}} for s in presets.SECTIONS
        }
        by_space = {
            "space": {"const": space},
            "preset": {"enum": [*names, None]},
            "dataset": datasets,
            **keys,
        }
        by_preset = {"space": {"enum": [space, None]}, "preset": {"enum": names}, "dataset": datasets, **keys}
        branches.append({"properties": by_space, "required": ["space"]})
        branches.append({"properties": by_preset, "required": ["preset"]})
    return {"anyOf": branches}


class SearchSpec(BaseModel):
    """A search request. Only ``space`` (or ``preset``) is required; the rest comes from the preset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_choices_schema())

    space: Space | None = None
    dataset: Dataset | None = None
    data_dir: str | None = Field(default=None, max_length=4096)
    preset: str | None = None
    epochs: Annotated[int | None, Field(ge=1, le=10_000, strict=True), WHOLE] = Field(
        default=None, description="search epochs"
    )
    # exact as a JSON number (a double)
    seed: Annotated[int, Field(ge=0, le=2**53 - 1, strict=True), WHOLE] = Field(
        default=0, description="seed of every generator"
    )
    name: str | None = Field(default=None, max_length=200)
    controller: ControllerSection | None = None
    child: ChildSection | None = None
    derive: DeriveSection | None = None
    retrain: RetrainSection | None = None
    resources: ResourcesSection | None = None

    @model_validator(mode="after")
    def _check_against_preset(self) -> SearchSpec:
        errors: list[InitErrorDetails] = []
        preset = _pick_preset(self, errors)
        if preset is not None:
            space = preset["space"]
            _check_dataset(space, self.dataset, errors)
            for section in presets.SECTIONS:
                _check_overrides(section, getattr(self, section), preset[section], errors)
            if not errors:
                _check_cross_fields(_merge_sections(self, preset), errors)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def preset_name(self) -> str:
        """The preset this spec builds on (explicit, or ``demo-<space>``)."""
        if self.preset is not None:
            return self.preset
        assert self.space is not None  # guaranteed by validation
        return presets.DEFAULT_PRESET[self.space]


def _error(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> InitErrorDetails:
    # message is pre-formatted; braces would be read as placeholders by PydanticCustomError
    safe = message.replace("{", "(").replace("}", ")")
    return InitErrorDetails(type=PydanticCustomError(kind, safe), loc=loc, input=value)


def _pick_preset(spec: SearchSpec, errors: list[InitErrorDetails]) -> dict[str, Any] | None:
    if spec.preset is None:
        if spec.space is None:
            errors.append(
                _error(("space",), "missing", f"give a space ({', '.join(presets.SPACES)}) or a preset", None)
            )
            return None
        return presets.PRESETS[presets.DEFAULT_PRESET[spec.space]]
    preset = presets.PRESETS.get(spec.preset)
    if preset is None:
        known = ", ".join(presets.PRESETS)
        errors.append(_error(("preset",), "unknown_preset", f"unknown preset; known: {known}", spec.preset))
        return None
    if spec.space is not None and spec.space != preset["space"]:
        errors.append(
            _error(
                ("preset",),
                "preset_space_mismatch",
                f"preset {spec.preset} is for the {preset['space']} space, not {spec.space}",
                spec.preset,
            )
        )
        return None
    return preset


def _check_dataset(space: str, dataset: str | None, errors: list[InitErrorDetails]) -> None:
    if dataset is None:
        return
    allowed = presets.datasets_for(space)
    if dataset not in allowed:
        errors.append(
            _error(
                ("dataset",),
                "dataset_space_mismatch",
                f"the {space} space needs one of {', '.join(allowed)}, not {dataset}",
                dataset,
            )
        )


def _check_overrides(
    section: str, given: Mapping[str, Any] | None, base: dict[str, Any], errors: list[InitErrorDetails]
) -> None:
    """Refuse the keys of ``given`` (typed and bounded already) that the preset's space lacks."""
    for key, value in (given or {}).items():
        if key not in base:
            known = ", ".join(sorted(base))
            errors.append(
                _error(
                    (section, key),
                    "unknown_key",
                    f"unknown key {section}.{key}; this preset's {section} keys: {known}",
                    value,
                )
            )


def _merge_sections(spec: SearchSpec, preset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # the sections' types already made a number key given as an integer a float
    return {section: {**preset[section], **(getattr(spec, section) or {})} for section in presets.SECTIONS}


def _check_cross_fields(sections: dict[str, dict[str, Any]], errors: list[InitErrorDetails]) -> None:
    derive, retrain = sections["derive"], sections["retrain"]
    if derive["top_k"] > derive["num_samples"]:
        errors.append(
            _error(
                ("derive", "top_k"),
                "too_large",
                "derive.top_k must not exceed derive.num_samples",
                derive["top_k"],
            )
        )
    if retrain["enabled"] and retrain["top_k"] > derive["top_k"]:
        errors.append(
            _error(
                ("retrain", "top_k"),
                "too_large",
                "retrain.top_k must not exceed derive.top_k",
                retrain["top_k"],
            )
        )


def resolve_spec(spec: SearchSpec) -> dict[str, Any]:
    """The complete spec stored in ``searches.spec`` and read by the workers: the preset's values
    with the user's overrides on top, plus ``preset`` and ``name``. ``data_dir`` stays null unless
    the user gave one (the worker falls back to its own ``settings.data_dir / <dataset>``)."""
    preset = presets.get_preset(spec.preset_name)
    resolved = copy.deepcopy(preset)
    resolved.update(_merge_sections(spec, preset))
    resolved.update(
        dataset=spec.dataset or preset["dataset"],
        data_dir=spec.data_dir,
        preset=spec.preset_name,
        name=spec.name,
        epochs=spec.epochs or preset["epochs"],
        seed=spec.seed,
    )
    return resolved


OUTSIDE_ROOTS = "data_dir must be a folder inside the server's data roots (ENAS_DATA_DIR or ENAS_DATA_ROOTS)"


def confine_data_dir(resolved: dict[str, Any], roots: tuple[Path, ...]) -> dict[str, Any]:
    """``resolved`` with its ``data_dir`` (if any) made absolute and checked to lie in ``roots``.

    A relative ``data_dir`` is taken inside the first root; ``..`` and symbolic links are resolved
    first, so neither leads out. Returns a copy with the resolved folder.
    Raises:
        InvalidInput (field ``data_dir``): the folder is outside every root; the message is the same
        whether or not the path exists, and names no server path.
    """
    given = resolved.get("data_dir")
    if not given:
        return resolved
    try:
        folder = (roots[0] / Path(given).expanduser()).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL byte
        raise InvalidInput(OUTSIDE_ROOTS, field="data_dir") from e
    if not any(folder.is_relative_to(root) for root in roots):
        raise InvalidInput(OUTSIDE_ROOTS, field="data_dir")
    return {**resolved, "data_dir": str(folder)}


def check_data_dir(resolved: dict[str, Any], default_root: Path | None) -> Path | None:
    """Check the data folder of a resolved spec where this process can see it.

    The folder is ``resolved["data_dir"]`` or else ``default_root / <dataset>``. Datasets without
    files (digits, synthetic-*) and folders that do not exist here (the worker may see another
    filesystem) are not checked. Returns the folder checked, or None.
    Raises:
        InvalidInput (field ``data_dir``): the folder lacks a file of the layout, naming the file and
        the expected layout (not the folder: the message names no server path).
    """
    dataset = resolved.get("dataset")
    if dataset not in LAYOUTS:
        return None
    given = resolved.get("data_dir")
    folder = Path(given).expanduser() if given else (default_root / dataset if default_root else None)
    if folder is None or not folder.is_dir():
        return None
    if dataset == "cifar10":
        _check_cifar(folder)
    else:
        _check_files(folder, PTB_FILES, "ptb", _looks_like_text)
    return folder


def _check_cifar(folder: Path) -> None:
    inner = folder / CIFAR_FOLDER
    if not (folder / "data_batch_1").exists() and inner.is_dir():
        folder = inner
    _check_files(folder, CIFAR_FILES, "cifar10", _looks_like_pickle)


def _check_files(folder: Path, names: tuple[str, ...], dataset: str, looks_right: Any) -> None:
    for name in names:
        path = folder / name
        if not path.is_file():
            raise InvalidInput(f"the data folder lacks {name}; expected {LAYOUTS[dataset]}", field="data_dir")
        if not looks_right(path):
            raise InvalidInput(
                f"the data folder's {name} is not in the expected format; expected {LAYOUTS[dataset]}",
                field="data_dir",
            )


def _looks_like_pickle(path: Path) -> bool:
    # Read the header only: never unpickle a user's file here (a pickle can run code).
    with path.open("rb") as f:
        return f.read(1) == b"\x80"


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a multi-byte character cut at the end of the chunk is fine
            return False
    return bool(head.strip()) and b"\x00" not in head
