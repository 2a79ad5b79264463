"""``load_dataset``: one entry point for every dataset a search spec can name.

Names: ``digits`` (scikit-learn's bundled 8x8 digits), ``cifar10`` (a ``cifar-10-batches-py``
folder), ``synthetic-cifar`` (generated), ``ptb`` (a folder with the Mikolov files),
``synthetic-ptb`` (generated). The loaders are imported lazily so that naming one dataset never
imports the others' dependencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enas_core.data.errors import DatasetError

DATASETS: tuple[str, ...] = ("digits", "cifar10", "synthetic-cifar", "ptb", "synthetic-ptb")
IMAGE_DATASETS: frozenset[str] = frozenset({"digits", "cifar10", "synthetic-cifar"})
TEXT_DATASETS: frozenset[str] = frozenset({"ptb", "synthetic-ptb"})


def dataset_kind(name: str) -> str:
    """``"image"`` or ``"text"`` for a dataset name.

    Raises:
        DatasetError: an unknown name.
    """
    if name in IMAGE_DATASETS:
        return "image"
    if name in TEXT_DATASETS:
        return "text"
    raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def _require_dir(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise DatasetError(f"dataset {name!r} reads files: give data_dir (the folder holding them)")
    return Path(data_dir)


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, **options: Any) -> Any:
    """Load a dataset by name.

    Args:
        name: one of ``DATASETS``.
        data_dir: the folder for ``cifar10`` (``cifar-10-batches-py`` or its parent) and ``ptb``
            (the folder with the three text files, or its parent); ignored by the others.
        seed: the generator seed of the synthetic sets (and of the digits split, if any).
        options: passed to the loader (e.g. ``num_train`` for ``synthetic-cifar``).

    Returns:
        an image dataset (``enas_core.data.base.ImageDataset``) or a ``CorpusDataset``.

    Raises:
        DatasetError: unknown name, missing or malformed files (the message names the file and the
            expected layout).
    """
    dataset_kind(name)
    if name == "cifar10":
        from enas_core.data.cifar import load_cifar10

        return load_cifar10(_require_dir(name, data_dir), **options)
    if name == "ptb":
        from enas_core.data.ptb import load_ptb

        return load_ptb(_require_dir(name, data_dir), **options)
    if name == "synthetic-cifar":
        from enas_core.data.synthetic import synthetic_cifar

        return synthetic_cifar(seed=seed, **options)
    if name == "synthetic-ptb":
        from enas_core.data.synthetic import synthetic_ptb

        return synthetic_ptb(seed=seed, **options)
    from enas_core.data.digits import load_digits

    return load_digits(seed=seed, **options)
