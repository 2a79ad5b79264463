"""Dataset loaders: CIFAR-10 pickles (written here in the original layout), Penn Treebank
(the real ptb-mini files), the synthetic sets, and `load_dataset`'s dispatch and errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from enas_core.data.base import augment_batch
from enas_core.data.cifar import TRAIN_FILES, load_cifar10
from enas_core.data.loading import DATASETS, DatasetError, load_dataset
from enas_core.data.ptb import EOS, UNK, batchify, bptt_window, bptt_windows, load_ptb
from enas_core.data.synthetic import synthetic_cifar, synthetic_ptb

torch.set_num_threads(1)

PTB_MINI = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb-mini"
PER_BATCH, NUM_TEST = 4, 6  # 20 training images in five batches


def _images(start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, 3072) images whose first pixel is their global index (to follow them through splits)."""
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0] = np.arange(start, start + n)
    return data


def write_cifar(root: Path, text_keys: bool = False, skip: tuple[str, ...] = ()) -> Path:
    """A `cifar-10-batches-py` folder under `root` in the original pickle layout (tiny batches)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def key(k: str) -> str | bytes:
        return k if text_keys else k.encode()

    def dump(obj: dict, name: str) -> None:
        if name not in skip:
            with open(folder / name, "wb") as f:
                pickle.dump({key(k): v for k, v in obj.items()}, f, protocol=4 if text_keys else 2)

    for b, name in enumerate(TRAIN_FILES):
        labels = [(b * PER_BATCH + i) % 10 for i in range(PER_BATCH)]
        dump({"data": _images(b * PER_BATCH, PER_BATCH, rng), "labels": labels, "batch_label": "train"}, name)
    dump(
        {"data": _images(100, NUM_TEST, rng), "labels": list(range(NUM_TEST)), "batch_label": "test"},
        "test_batch",
    )
    dump({"label_names": ["airplane"] * 10, "num_vis": 3072}, "batches.meta")
    return folder


# --- CIFAR-10 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text_keys", [False, True])
def test_cifar_splits_last_images_are_validation(tmp_path: Path, text_keys: bool) -> None:
    write_cifar(tmp_path, text_keys=text_keys)
    data = load_cifar10(tmp_path, num_valid=6)  # the parent folder is accepted
    assert data.describe()["sizes"] == {"train": 14, "valid": 6, "test": NUM_TEST}
    assert (data.in_channels, data.image_size, data.num_classes) == (3, 32, 32)[:2] + (10,)
    assert data.train_y.tolist() == [i % 10 for i in range(14)]
    assert data.valid_y.tolist() == [i % 10 for i in range(14, 20)]
    # the first pixel still identifies each image after standardisation: order is preserved
    mean_r, std_r = data.mean[0], data.std[0]
    first = (data.valid_x[:, 0, 0, 0] * std_r + mean_r) * 255
    torch.testing.assert_close(first, torch.arange(14, 20, dtype=torch.float32), atol=1e-3, rtol=0)
    assert data.pad == 4 and data.flip


def test_cifar_standardises_with_training_statistics_only(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    data = load_cifar10(folder, num_valid=6)  # the folder itself is accepted too
    raw = np.concatenate([pickle.loads((folder / f).read_bytes())[b"data"] for f in TRAIN_FILES])
    train = raw[:14].reshape(-1, 3, 32, 32) / 255.0
    np.testing.assert_allclose(data.mean, train.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(data.std, train.std(axis=(0, 2, 3)), rtol=1e-6)
    torch.testing.assert_close(data.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        data.train_x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0
    )
    assert data.train_x.dtype == torch.float32


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
def test_cifar_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    write_cifar(tmp_path, skip=(missing,))
    with pytest.raises(DatasetError, match=missing) as err:
        load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(err.value)  # the expected layout is spelled out


def test_cifar_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_cifar10(tmp_path)


def test_cifar_malformed_batches(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), dtype=np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(DatasetError, match=r"data_batch_2.*\(n, 3072\)"):
        load_cifar10(tmp_path)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 12]}, f, protocol=2)
    with pytest.raises(DatasetError, match="labels"):
        load_cifar10(tmp_path)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_cifar10(tmp_path)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/enas-cifar-pickle-ran"),))


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DatasetError, match="not allowed"):
        load_cifar10(tmp_path)
    assert not Path("/tmp/enas-cifar-pickle-ran").exists()


def test_cifar_augmentation_keeps_shape_and_cutout_zeroes_a_square(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    data = load_cifar10(tmp_path, num_valid=6)
    gen = torch.Generator().manual_seed(0)
    batch = data.train_x[:8]  # (8, 3, 32, 32)
    out = augment_batch(batch, gen, pad=data.pad, flip=data.flip, cutout=8)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    holes = augment_batch(torch.ones(64, 3, 32, 32), gen, cutout=8) == 0  # (64, 3, 32, 32)
    assert torch.equal(holes[:, 0], holes[:, 2])  # the same square in every channel
    rows, cols = holes[:, 0].any(dim=2), holes[:, 0].any(dim=1)  # (64, 32), (64, 32)
    for r, c, h in zip(rows, cols, holes[:, 0], strict=True):
        assert 0 < r.sum() <= 8 and 0 < c.sum() <= 8  # a (clipped) square, never empty
        assert h.sum() == r.sum() * c.sum()  # a full rectangle
    touches_top_left = (rows[:, 0] & cols[:, 0]).float().mean()
    assert touches_top_left < 0.5  # centred at random pixels, not anchored top-left


# --- Penn Treebank ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptb():
    if not PTB_MINI.is_dir():
        pytest.skip(f"{PTB_MINI} not present")
    return load_ptb(PTB_MINI)


def test_ptb_mini_token_counts_and_vocabulary(ptb) -> None:
    assert ptb.test.numel() == 82_430  # the real PTB test set, <eos> included
    assert ptb.train.numel() == 59_429 and ptb.valid.numel() == 14_331
    train_words = set((PTB_MINI / "ptb.train.txt").read_text().split())
    assert ptb.vocab_size == len(train_words | {EOS, UNK}) == 5_521
    assert ptb.oov["train"] == 0 and ptb.oov["test"] > 0  # unseen words map to <unk>
    first_line = (PTB_MINI / "ptb.train.txt").read_text().splitlines()[0].split() + [EOS]
    assert [ptb.vocab[i] for i in ptb.train[: len(first_line)].tolist()] == first_line
    assert int((ptb.test == ptb.vocab.index(EOS)).sum()) == 3_761  # one per sentence


def test_ptb_batchify_and_windows(ptb) -> None:
    stream = ptb.batchify("valid", 10)  # (N // 10, 10)
    assert stream.shape == (14_331 // 10, 10)
    assert torch.equal(stream[:, 1], ptb.valid[stream.size(0) : 2 * stream.size(0)])  # columns are contiguous
    x, y = bptt_window(stream, 0, 35)
    assert x.shape == y.shape == (35, 10) and torch.equal(x[1:], y[:-1])
    windows = list(bptt_windows(stream, 35))
    assert sum(w[0].size(0) for w in windows) == stream.size(0) - 1
    with pytest.raises(ValueError, match="too few"):
        batchify(ptb.valid[:5], 10)


def test_ptb_errors_name_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "ptb.train.txt").write_text(" a b c \n")
    (tmp_path / "ptb.valid.txt").write_text(" a b \n")
    with pytest.raises(DatasetError, match="ptb.test.txt") as err:
        load_ptb(tmp_path)
    assert "ptb.train.txt" not in str(err.value).split("lacks")[1].split(";")[0]
    with pytest.raises(DatasetError, match="does not exist"):
        load_ptb(tmp_path / "nowhere")
    (tmp_path / "ptb.test.txt").write_text("\n\n")
    with pytest.raises(DatasetError, match="ptb.test.txt has no words"):
        load_ptb(tmp_path)
    (tmp_path / "ptb.test.txt").write_text(" a z \n")
    data = load_ptb(tmp_path)
    assert data.oov == {"train": 0, "valid": 0, "test": 1}
    assert [data.vocab[i] for i in data.test.tolist()] == ["a", UNK, EOS]


# --- synthetic sets and dispatch --------------------------------------------------------------------


def test_synthetic_cifar_is_seeded_and_shaped() -> None:
    a = synthetic_cifar(seed=1, num_train=60, num_valid=20, num_test=30)
    b = load_dataset("synthetic-cifar", seed=1, num_train=60, num_valid=20, num_test=30)
    assert a.describe()["sizes"] == {"train": 60, "valid": 20, "test": 30}
    assert a.train_x.shape[1:] == (3, 32, 32) and torch.equal(a.train_x, b.train_x)
    assert not torch.equal(
        a.train_x, synthetic_cifar(seed=2, num_train=60, num_valid=20, num_test=30).train_x
    )
    assert set(a.train_y.tolist()) <= set(range(10))


def test_synthetic_ptb_has_learnable_structure() -> None:
    data = synthetic_ptb(seed=0, vocab_size=40, num_train=5000, num_valid=500, num_test=500)
    assert data.vocab_size <= 42 and data.oov == {"train": 0, "valid": 0, "test": 0}
    assert torch.equal(data.train, synthetic_ptb(seed=0, vocab_size=40, num_train=5000).train[:5000])
    ids = data.train
    pairs = ids[:-1] * data.vocab_size + ids[1:]
    counts = torch.bincount(pairs, minlength=data.vocab_size**2).view(data.vocab_size, -1).float()
    bigram = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    nll = -(counts * bigram.clamp_min(1e-12).log()).sum() / counts.sum()
    assert float(nll.exp()) < data.vocab_size / 4  # a bigram model predicts far better than uniform


def test_load_dataset_dispatch_and_errors(tmp_path: Path) -> None:
    assert DATASETS == ("digits", "cifar10", "synthetic-cifar", "ptb", "synthetic-ptb")
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'.*synthetic-ptb"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="data_dir"):
        load_dataset("cifar10", None)
    with pytest.raises(DatasetError, match="ptb.train.txt"):
        load_dataset("ptb", tmp_path)
    assert isinstance(DatasetError("x"), ValueError)
    write_cifar(tmp_path)
    assert load_dataset("cifar10", tmp_path, num_valid=6).name == "cifar10"
    assert (
        load_dataset("synthetic-ptb", seed=0, num_train=500, num_valid=100, num_test=100).name
        == "synthetic-ptb"
    )
    if PTB_MINI.is_dir():
        assert load_dataset("ptb", PTB_MINI).test.numel() == 82_430
