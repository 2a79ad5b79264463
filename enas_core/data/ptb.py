"""Penn Treebank (Mikolov format) and BPTT batching for the language model.

Format: ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``; one sentence a line, words separated
by spaces; ``<eos>`` is appended to every line. The vocabulary is built from the TRAINING file only
(ordered by decreasing frequency, ties alphabetical; ``<eos>`` and ``<unk>`` always present). A word in
the validation or test file that the training file lacks is mapped to ``<unk>`` and counted in
``CorpusDataset.oov`` (the real PTB has a closed vocabulary, so its count is 0 there; the ptb-mini
development copy has a smaller training file and some).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from enas_core.data.errors import DatasetError

PTB_FILES: dict[str, str] = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
EOS, UNK = "<eos>", "<unk>"
PTB_LAYOUT = (
    "a folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt (one sentence a line, space-separated words)"
)


@dataclass
class CorpusDataset:
    """A tokenised corpus: vocabulary and three 1-D LongTensors of token ids.

    Attributes:
        name: "ptb" or "synthetic-ptb".
        vocab: id -> word.
        train / valid / test: token ids ``(N,)``.
        oov: per split, how many words were mapped to ``<unk>`` because training lacks them.
    """

    name: str
    vocab: tuple[str, ...]
    train: Tensor
    valid: Tensor
    test: Tensor
    oov: dict[str, int] = field(default_factory=dict)
    kind: str = "text"

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> Tensor:
        """The token ids of ``"train" | "valid" | "test"``."""
        if name not in PTB_FILES:
            raise ValueError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, name)

    def batchify(self, split: str, batch_size: int, device: str | torch.device = "cpu") -> Tensor:
        """The split cut into ``batch_size`` contiguous columns ``(N // B, B)`` (the tail is dropped)."""
        return batchify(self.split(split), batch_size, device)

    def describe(self) -> dict[str, object]:
        """Sizes for logs and the API."""
        sizes = {s: int(self.split(s).numel()) for s in PTB_FILES}
        return {"name": self.name, "vocab_size": self.vocab_size, "tokens": sizes, "oov": dict(self.oov)}


def batchify(ids: Tensor, batch_size: int, device: str | torch.device = "cpu") -> Tensor:
    """Cut a 1-D stream into ``batch_size`` columns: ``(N // B, B)``, column b is a contiguous span."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    steps = ids.numel() // batch_size
    if steps < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for batch_size {batch_size}")
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous().to(device)  # (N // B, B)


def bptt_window(batched: Tensor, start: int, bptt: int) -> tuple[Tensor, Tensor]:
    """Inputs and next-token targets ``(T, B)`` of the window starting at row ``start`` (T <= bptt)."""
    length = min(bptt, batched.size(0) - 1 - start)
    if length <= 0:
        raise ValueError(f"window start {start} is past the end ({batched.size(0)} rows)")
    return batched[start : start + length], batched[start + 1 : start + 1 + length]  # (T, B), (T, B)


def bptt_windows(batched: Tensor, bptt: int) -> Iterator[tuple[Tensor, Tensor]]:
    """All consecutive windows of a batchified stream, in order."""
    for start in range(0, batched.size(0) - 1, bptt):
        yield bptt_window(batched, start, bptt)


def read_words(path: Path) -> list[str]:
    """Words of a Mikolov-format file, ``<eos>`` after every line."""
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append(EOS)
    return words


def build_vocab(words: list[str]) -> tuple[str, ...]:
    """Words by decreasing frequency (ties alphabetical); ``<eos>`` and ``<unk>`` always included."""
    counts = Counter(words)
    for special in (EOS, UNK):
        counts.setdefault(special, 0)
    return tuple(sorted(counts, key=lambda w: (-counts[w], w)))


def encode(words: list[str], index: dict[str, int]) -> tuple[Tensor, int]:
    """Token ids of ``words`` and how many were unknown (mapped to ``<unk>``)."""
    unk = index[UNK]
    ids = [index.get(w, unk) for w in words]
    oov = sum(1 for w in words if w not in index)
    return torch.tensor(ids, dtype=torch.long), oov


def find_ptb_folder(data_dir: str | Path) -> Path:
    """The folder holding the three files: ``data_dir`` itself or its ``ptb`` subfolder.

    Raises:
        DatasetError: naming every missing file and the expected layout.
    """
    root = Path(data_dir)
    for candidate in (root, root / "ptb"):
        if all((candidate / f).is_file() for f in PTB_FILES.values()):
            return candidate
    if not root.is_dir():
        raise DatasetError(f"PTB folder {root} does not exist; expected {PTB_LAYOUT}")
    missing = [f for f in PTB_FILES.values() if not (root / f).is_file()]
    raise DatasetError(f"PTB folder {root} lacks {', '.join(missing)}; expected {PTB_LAYOUT}")


def load_ptb(data_dir: str | Path) -> CorpusDataset:
    """Read Penn Treebank from ``data_dir`` (the folder with the three files, or its parent).

    Raises:
        DatasetError: a missing file, an unreadable or empty file.
    """
    folder = find_ptb_folder(data_dir)
    words: dict[str, list[str]] = {}
    for split, fname in PTB_FILES.items():
        try:
            words[split] = read_words(folder / fname)
        except (OSError, UnicodeDecodeError) as e:
            raise DatasetError(
                f"cannot read {folder / fname} as UTF-8 text: {e}; expected {PTB_LAYOUT}"
            ) from e
        if not any(w != EOS for w in words[split]):
            raise DatasetError(f"{folder / fname} has no words; expected {PTB_LAYOUT}")
    vocab = build_vocab(words["train"])
    index = {w: i for i, w in enumerate(vocab)}
    tensors, oov = {}, {}
    for split in PTB_FILES:
        tensors[split], oov[split] = encode(words[split], index)
    return CorpusDataset("ptb", vocab, tensors["train"], tensors["valid"], tensors["test"], oov)
