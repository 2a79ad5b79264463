"""Checkpoint files: atomic writes, reading back, choosing the one to resume from, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.checkpoint import (
    CheckpointError,
    checkpoint_uri,
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    state_bytes,
    state_from_bytes,
)


def _save(root: Path, search_id: int, epoch: int) -> str:
    return save_checkpoint(str(root), search_id, epoch, f"c{epoch}".encode(), f"s{epoch}".encode())


def test_state_bytes_is_a_copy() -> None:
    weights = torch.zeros(3)
    blob = state_bytes({"w": weights, "step": 4})
    weights += 1  # training goes on after the checkpoint was taken
    restored = state_from_bytes(blob)
    assert restored["step"] == 4 and torch.equal(restored["w"], torch.zeros(3))


def test_save_then_load_and_no_temp_files_left(tmp_path: Path) -> None:
    uri = _save(tmp_path, 7, 2)
    assert uri == checkpoint_uri(str(tmp_path), 7, 2) == str(tmp_path / "7" / "ckpt-2.pt")
    ckpt = load_checkpoint(uri, search_id=7)
    assert (ckpt.epoch, ckpt.controller, ckpt.shared) == (2, b"c2", b"s2")
    assert sorted(p.name for p in (tmp_path / "7").iterdir()) == ["ckpt-2.pt"]
    with pytest.raises(CheckpointError, match="belongs to search 7"):
        load_checkpoint(uri, search_id=8)


def test_overwrite_is_atomic_replacement(tmp_path: Path) -> None:
    first = _save(tmp_path, 1, 0)
    inode = Path(first).stat().st_ino
    save_checkpoint(str(tmp_path), 1, 0, b"new", b"new")
    assert Path(first).stat().st_ino != inode  # a new file renamed over the old one
    assert load_checkpoint(first, search_id=1).controller == b"new"


def test_newest_checkpoint_skips_uncommitted_and_corrupt_files(tmp_path: Path) -> None:
    for epoch in range(4):
        _save(tmp_path, 3, epoch)
    (tmp_path / "3" / "ckpt-2.pt").write_bytes(b"truncated")
    # the database committed epoch 2 (its file is corrupt); epoch 3's file was written before a crash
    chosen = newest_checkpoint(str(tmp_path), 3, checkpoint_uri(str(tmp_path), 3, 2), max_epoch=2)
    assert chosen is not None and chosen.epoch == 1
    assert newest_checkpoint(str(tmp_path), 99, None, max_epoch=5) is None


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    for epoch in range(5):
        _save(tmp_path, 4, epoch)
    removed = prune_checkpoints(str(tmp_path), 4, keep=2)
    assert len(removed) == 3
    assert [e for e, _ in list_checkpoints(str(tmp_path), 4)] == [4, 3]


def test_file_uri_artifact_dir(tmp_path: Path) -> None:
    """A ``file://`` URI works like its path (S3 and the shared folder: tests/workers/test_artifacts.py)."""
    root = tmp_path.as_uri()
    uri = save_checkpoint(root, 5, 0, b"c", b"s")
    assert uri == f"{root}/5/ckpt-0.pt" and (tmp_path / "5" / "ckpt-0.pt").is_file()
    assert load_checkpoint(uri, search_id=5).shared == b"s"
    assert [e for e, _ in list_checkpoints(root, 5)] == [0]
