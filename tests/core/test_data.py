"""Digits dataset, batch streams and augmentation."""

from __future__ import annotations

import torch

from enas_core.data.base import BatchStream, ImageDataset, augment_batch, split_indices


def test_digits_splits_and_standardisation(digits: ImageDataset) -> None:
    sizes = digits.describe()["sizes"]
    assert sizes == {"train": 1258, "valid": 270, "test": 269}
    assert digits.train_x.shape[1:] == (1, 8, 8) and digits.num_classes == 10
    assert abs(digits.train_x.mean().item()) < 1e-5  # standardised with TRAIN statistics
    assert abs(digits.train_x.std(unbiased=False).item() - 1.0) < 1e-4
    assert abs(digits.valid_x.mean().item()) > 1e-6  # other splits use the train statistics
    assert digits.flip is False and digits.pad == 1
    train, valid, test = split_indices(1797, (0.7, 0.15), seed=0)
    assert len(set(train.tolist()) | set(valid.tolist()) | set(test.tolist())) == 1797


def test_digits_split_depends_on_seed_only() -> None:
    from enas_core.data.digits import load_digits

    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(a.train_y, b.train_y) and torch.equal(a.test_x, b.test_x)
    assert not torch.equal(a.train_y, c.train_y)


def test_batch_stream_resumes_bit_identically() -> None:
    a = BatchStream(10, 4, seed=1)
    first = [a.next() for _ in range(3)]
    assert all(len(i) == 4 for i in first)
    assert len(set(torch.cat(first[:2]).tolist())) == 8  # no repeats within a pass
    state = a.state_dict()
    b = BatchStream(10, 4, seed=99)
    b.load_state_dict(state)
    for _ in range(5):
        assert torch.equal(a.next(), b.next())
    assert BatchStream(3, 8, seed=0).next().shape == (3,)


def test_augmentation_is_seeded_and_never_flips_when_disabled() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    same = augment_batch(x, torch.Generator().manual_seed(0), pad=0, flip=False)
    assert torch.equal(same, x)
    a = augment_batch(x, torch.Generator().manual_seed(0), pad=1, flip=True, cutout=2)
    b = augment_batch(x, torch.Generator().manual_seed(0), pad=1, flip=True, cutout=2)
    assert torch.equal(a, b) and a.shape == x.shape
    flipped_only = augment_batch(
        x[:1].expand(64, 1, 4, 4), torch.Generator().manual_seed(1), pad=0, flip=True
    )
    mirrored = sum(torch.equal(f, x[0].flip(-1)) for f in flipped_only)
    assert 0 < mirrored < 64 and mirrored + sum(torch.equal(f, x[0]) for f in flipped_only) == 64
    crops = augment_batch(x[:1].expand(64, 1, 4, 4), torch.Generator().manual_seed(1), pad=1, flip=False)
    assert not any(torch.equal(c[:, :, 1:3], x[0].flip(-1)[:, :, 1:3]) for c in crops)
