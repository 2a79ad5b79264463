"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, and batched image augmentation.

Layout: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``; each batch a pickled
dict with ``data`` (uint8 ``(n, 3072)``, rows R then G then B planes of 32x32) and ``labels``
(n ints in [0, 9]); keys may be byte strings (the original Python 2 pickles) or text.

Splits: the five training batches are concatenated in order; the LAST ``num_valid`` (5,000, the
last 10%) images are the validation split, the rest (45,000) the training split; ``test_batch`` is
the test split.
Standardisation: per-channel mean and standard deviation of the training split (pixels in [0, 1]),
applied to every split. Augmentation is ``enas_core.data.base.augment_batch`` (batched tensor ops on
the batch's device: pad-4 random crop, horizontal flip, optional cutout centred at a random pixel).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from enas_core.data.base import ImageDataset
from enas_core.data.errors import DatasetError

CIFAR_FOLDER = "cifar-10-batches-py"
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE, META_FILE = "test_batch", "batches.meta"
CIFAR_LAYOUT = (
    f"a {CIFAR_FOLDER} folder (or its parent) with data_batch_1..data_batch_5, test_batch and batches.meta, "
    "each a pickled dict with 'data' (uint8, n x 3072) and 'labels' (n ints in 0..9)"
)
CIFAR_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# What a CIFAR pickle may reference: numpy array reconstruction and byte-string decoding, nothing else
# (an arbitrary pickle can run code, and data_dir comes from a user's spec).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays, lists, dicts and scalars."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _text_keys(d: dict[Any, Any]) -> dict[str, Any]:
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in d.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64 of one batch file.

    Raises:
        DatasetError: missing file or content not in the CIFAR layout (naming the file).
    """
    if not path.is_file():
        raise DatasetError(f"missing {path}; expected {CIFAR_LAYOUT}")
    try:
        with open(path, "rb") as f:
            raw = _DataUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a malformed file
        raise DatasetError(f"{path} is not a CIFAR batch pickle ({e}); expected {CIFAR_LAYOUT}") from e
    if not isinstance(raw, dict):
        raise DatasetError(f"{path} holds a {type(raw).__name__}, not a dict; expected {CIFAR_LAYOUT}")
    d = _text_keys(raw)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = getattr(data, "shape", type(data).__name__)
        raise DatasetError(
            f"{path}: 'data' must be a uint8 array (n, 3072), got {got}; expected {CIFAR_LAYOUT}"
        )
    labels_arr = np.asarray(labels if labels is not None else [], dtype=np.int64)
    in_range = labels_arr.size == 0 or (labels_arr.min() >= 0 and labels_arr.max() <= 9)
    if labels_arr.shape != (data.shape[0],) or not in_range:
        raise DatasetError(f"{path}: 'labels' must be {data.shape[0]} ints in 0..9; expected {CIFAR_LAYOUT}")
    return data.reshape(-1, 3, 32, 32), labels_arr


def find_cifar_folder(data_dir: str | Path) -> Path:
    """``data_dir`` itself when it holds the batches, else its ``cifar-10-batches-py`` subfolder.

    Raises:
        DatasetError: neither holds ``data_batch_1`` (naming the folders tried and the layout).
    """
    root = Path(data_dir)
    for candidate in (root, root / CIFAR_FOLDER):
        if (candidate / TRAIN_FILES[0]).is_file():
            return candidate
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10 folder {root} does not exist; expected {CIFAR_LAYOUT}")
    raise DatasetError(
        f"missing {root / TRAIN_FILES[0]} (also looked in {root / CIFAR_FOLDER}); expected {CIFAR_LAYOUT}"
    )


def read_cifar10(data_dir: str | Path) -> dict[str, np.ndarray]:
    """The raw arrays: ``train_x`` (50000, 3, 32, 32) uint8, ``train_y``, ``test_x``, ``test_y``.

    Raises:
        DatasetError: a missing or malformed file.
    """
    folder = find_cifar_folder(data_dir)
    missing = [f for f in (*TRAIN_FILES, TEST_FILE, META_FILE) if not (folder / f).is_file()]
    if missing:
        raise DatasetError(f"{folder} lacks {', '.join(missing)}; expected {CIFAR_LAYOUT}")
    parts = [read_batch(folder / f) for f in TRAIN_FILES]
    test_x, test_y = read_batch(folder / TEST_FILE)
    return {
        "train_x": np.concatenate([p[0] for p in parts]),
        "train_y": np.concatenate([p[1] for p in parts]),
        "test_x": test_x,
        "test_y": test_y,
    }


def channel_stats(images: Tensor, chunk: int = 5000) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std ``(C,)`` (float64) of uint8 images ``(N, C, H, W)`` scaled to [0, 1].

    Accumulated in chunks, so 45,000 CIFAR images never exist as one float64 copy.
    """
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros(images.shape[1], dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0  # (n, C, H, W)
        total += x.sum(dim=(0, 2, 3))
        squares += x.pow(2).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count  # (C,)
    std = (squares / count - mean.pow(2)).clamp_min(0.0).sqrt().clamp_min(1e-8)  # (C,)
    return mean, std


def standardise(images: Tensor, mean: Tensor, std: Tensor, chunk: int = 5000) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel, chunk by chunk."""
    out = torch.empty(images.shape, dtype=torch.float32)
    m, s = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)  # (1, C, 1, 1)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0  # (n, C, H, W)
        out[start : start + chunk] = ((x - m) / s).float()
    return out


def default_num_valid(num_images: int) -> int:
    """The validation share of ``num_images`` training images: the last 10% (5,000 of CIFAR-10's
    50,000), at least one."""
    return max(1, num_images // 10)


def image_dataset_from_arrays(
    name: str, arrays: dict[str, np.ndarray], num_valid: int | None = None, num_classes: int = 10
) -> ImageDataset:
    """Split (the last ``num_valid`` training images are the validation split; None: the last
    10%), standardise with the training split's statistics, and wrap as an ``ImageDataset``
    (pad-4 crop and flip augmentation).

    Raises:
        DatasetError: ``num_valid`` leaves no training images.
    """
    train_x = torch.from_numpy(np.ascontiguousarray(arrays["train_x"]))  # (N, C, H, W) uint8
    train_y = torch.from_numpy(np.asarray(arrays["train_y"], dtype=np.int64))  # (N,)
    if num_valid is None:
        num_valid = default_num_valid(train_x.shape[0])
    n_train = train_x.shape[0] - num_valid
    if num_valid < 1 or n_train < 1:
        raise DatasetError(f"{name}: num_valid={num_valid} must be in [1, {train_x.shape[0] - 1}]")
    mean, std = channel_stats(train_x[:n_train])
    test_x = torch.from_numpy(np.ascontiguousarray(arrays["test_x"]))  # (M, C, H, W) uint8
    return ImageDataset(
        name=name,
        train_x=standardise(train_x[:n_train], mean, std),
        train_y=train_y[:n_train],
        valid_x=standardise(train_x[n_train:], mean, std),
        valid_y=train_y[n_train:],
        test_x=standardise(test_x, mean, std),
        test_y=torch.from_numpy(np.asarray(arrays["test_y"], dtype=np.int64)),
        num_classes=num_classes,
        in_channels=train_x.shape[1],
        image_size=train_x.shape[2],
        pad=4,
        flip=True,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


def load_cifar10(data_dir: str | Path, num_valid: int | None = None) -> ImageDataset:
    """CIFAR-10 from ``data_dir`` (``cifar-10-batches-py`` or its parent): 45k / 5k / 10k (the
    validation split is the last ``num_valid`` training images, default the last 10%, so smaller
    files in the same format, e.g. in tests, split the same way).

    Training augmentation is ``enas_core.data.base.augment_batch`` with the dataset's ``pad`` (4)
    and ``flip`` (True), plus the spec's ``cutout``.

    Raises:
        DatasetError: a missing or malformed file (naming it and the expected layout).
    """
    return image_dataset_from_arrays("cifar10", read_cifar10(data_dir), num_valid=num_valid)
