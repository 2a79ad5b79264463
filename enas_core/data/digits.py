"""scikit-learn's bundled 8x8 handwritten digits (1,797 real images, 10 classes, no download).

Split 70/15/15 train/valid/test by a seeded permutation; pixels scaled to [0, 1] then
standardised with the TRAIN split's mean/std. Augmentation: 1-pixel pad-and-crop, no flips
(a mirrored digit is a different symbol).
"""

from __future__ import annotations

import torch

from enas_core.data.base import ImageDataset, split_indices, standardise_splits

DIGITS_FRACTIONS = (0.70, 0.15)


def load_digits(seed: int = 0) -> ImageDataset:
    """The digits dataset as a 1 x 8 x 8 `ImageDataset`; the split depends only on `seed`."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)  # (N,)
    train, valid, test = split_indices(images.shape[0], DIGITS_FRACTIONS, seed)
    (tx, vx, sx), mean, std = standardise_splits(images[train], images[valid], images[test])
    return ImageDataset(
        name="digits",
        train_x=tx,
        train_y=labels[train],
        valid_x=vx,
        valid_y=labels[valid],
        test_x=sx,
        test_y=labels[test],
        num_classes=10,
        in_channels=1,
        image_size=8,
        pad=1,
        flip=False,
        mean=mean,
        std=std,
    )
