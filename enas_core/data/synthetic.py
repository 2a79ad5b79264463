"""Generated datasets with learnable structure, for tests and benchmarks (no files needed).

- ``synthetic-cifar``: CIFAR-10 shapes (3 x 32 x 32 uint8, 10 classes); each class is a smooth random
  colour pattern, each image its class pattern shifted by a few pixels at a random (low) contrast,
  over a smooth random clutter field of its own, plus pixel noise (a nearest-class-mean classifier
  gets about 80% at the defaults, so it is learnable without being trivial). It then goes through
  the same split, standardisation and augmentation as CIFAR-10 (the last ``num_valid`` training
  images are the validation split).
- ``synthetic-ptb``: a corpus from a random sparse Markov chain over ``vocab_size`` words (each word
  has a few likely successors), sentences ended by ``<eos>``; a bigram model reaches a perplexity far
  below the vocabulary size, a unigram one does not.
"""

from __future__ import annotations

import numpy as np
import torch

from enas_core.data.base import ImageDataset
from enas_core.data.cifar import image_dataset_from_arrays
from enas_core.data.ptb import EOS, CorpusDataset, build_vocab, encode


def _class_patterns(rng: np.random.Generator, num_classes: int, size: int, grid: int = 4) -> np.ndarray:
    """Smooth patterns ``(K, 3, size, size)`` in [0, 1]: a random ``grid x grid`` colour field, upsampled."""
    coarse = torch.from_numpy(rng.random((num_classes, 3, grid, grid)))  # (K, 3, g, g)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return fine.clamp(0.0, 1.0).numpy()  # (K, 3, S, S)


def synthetic_images(
    rng: np.random.Generator,
    patterns: np.ndarray,
    n: int,
    max_shift: int = 3,
    noise: float = 0.25,
    clutter: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images ``(n, 3, S, S)`` and their labels, drawn around the class ``patterns``.

    Each image: its class pattern (shifted by up to ``max_shift`` pixels, random contrast) plus a
    smooth random clutter field of its own (amplitude ``clutter``) plus pixel noise (``noise``).
    """
    num_classes = patterns.shape[0]
    offsets = range(-max_shift, max_shift + 1)
    shifted = np.stack([np.roll(patterns, (dy, dx), axis=(2, 3)) for dy in offsets for dx in offsets]).astype(
        np.float32
    )  # (num_shifts, K, 3, S, S)
    labels = rng.integers(0, num_classes, size=n)  # (n,)
    shift = rng.integers(0, shifted.shape[0], size=n)  # (n,)
    base = shifted[shift, labels]  # (n, 3, S, S)
    contrast = rng.uniform(0.2, 0.6, size=(n, 1, 1, 1)).astype(np.float32)  # (n, 1, 1, 1)
    background = _class_patterns(rng, n, patterns.shape[-1]).astype(np.float32) - 0.5  # (n, 3, S, S)
    x = 0.5 + contrast * (base - 0.5) + clutter * background  # (n, 3, S, S)
    x += noise * rng.standard_normal(base.shape, dtype=np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0).round().astype(np.uint8), labels.astype(np.int64)


def synthetic_cifar_arrays(
    seed: int = 0,
    num_train: int = 4500,
    num_valid: int = 500,
    num_test: int = 1000,
    num_classes: int = 10,
    image_size: int = 32,
    noise: float = 0.25,
    clutter: float = 0.8,
) -> dict[str, np.ndarray]:
    """Raw arrays in the layout ``read_cifar10`` returns (``train_x`` holds train then validation)."""
    rng = np.random.default_rng(seed)
    patterns = _class_patterns(rng, num_classes, image_size)
    train_x, train_y = synthetic_images(rng, patterns, num_train + num_valid, noise=noise, clutter=clutter)
    test_x, test_y = synthetic_images(rng, patterns, num_test, noise=noise, clutter=clutter)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def synthetic_cifar(
    seed: int = 0,
    num_train: int = 4500,
    num_valid: int = 500,
    num_test: int = 1000,
    num_classes: int = 10,
    image_size: int = 32,
    noise: float = 0.25,
    clutter: float = 0.8,
) -> ImageDataset:
    """The ``synthetic-cifar`` image dataset (same API as ``load_cifar10``'s result)."""
    arrays = synthetic_cifar_arrays(
        seed, num_train, num_valid, num_test, num_classes, image_size, noise, clutter
    )
    return image_dataset_from_arrays("synthetic-cifar", arrays, num_valid=num_valid, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------------
# text


def _markov_chain(rng: np.random.Generator, vocab_size: int, branching: int) -> tuple[np.ndarray, np.ndarray]:
    """Successor table ``(V, k)`` and successor probabilities ``(k,)`` (decreasing, shared by every word)."""
    successors = np.stack([rng.choice(vocab_size, size=branching, replace=False) for _ in range(vocab_size)])
    probs = 0.5 ** np.arange(branching)
    return successors, probs / probs.sum()


def synthetic_words(
    rng: np.random.Generator,
    successors: np.ndarray,
    probs: np.ndarray,
    n: int,
    mean_sentence: float = 12.0,
) -> list[str]:
    """``n`` words from the chain: a sentence starts at a random word and ends with probability 1/mean."""
    vocab_size, branching = successors.shape
    picks = rng.choice(branching, size=n, p=probs)  # (n,)
    ends = rng.random(n) < 1.0 / mean_sentence  # (n,)
    starts = rng.integers(0, vocab_size, size=n)  # (n,)
    words: list[str] = []
    current = int(starts[0])
    for i in range(n):
        if current < 0:
            words.append(EOS)
            current = int(starts[i])
            continue
        words.append(f"w{current}")
        current = -1 if ends[i] else int(successors[current, picks[i]])
    return words


def synthetic_ptb(
    seed: int = 0,
    vocab_size: int = 100,
    num_train: int = 20_000,
    num_valid: int = 4_000,
    num_test: int = 4_000,
    branching: int = 3,
) -> CorpusDataset:
    """The ``synthetic-ptb`` corpus (same API as ``load_ptb``'s result); the vocabulary comes from train."""
    rng = np.random.default_rng(seed)
    successors, probs = _markov_chain(rng, vocab_size, branching)
    words = {
        split: synthetic_words(rng, successors, probs, n)
        for split, n in (("train", num_train), ("valid", num_valid), ("test", num_test))
    }
    vocab = build_vocab(words["train"])
    index = {w: i for i, w in enumerate(vocab)}
    ids, oov = {}, {}
    for split, ws in words.items():
        ids[split], oov[split] = encode(ws, index)
    return CorpusDataset("synthetic-ptb", vocab, ids["train"], ids["valid"], ids["test"], oov)
