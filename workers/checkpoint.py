"""Search checkpoints: one file per finished epoch, written atomically, the newest few kept.

A checkpoint is ``torch.save`` of ``{"format", "search_id", "epoch", "controller", "shared",
"created_at"}`` where ``controller`` and ``shared`` are the actors' own ``torch.save`` bytes of
their trainers' ``state_dict()`` (models, both optimizers, the baseline, every RNG state, step
counters; see `workers.actors`). The file of epoch ``e`` (0-based, the last finished epoch) is
``<artifact_dir>/<search_id>/ckpt-<e>.pt``; ``artifact_dir`` is a local folder, a ``file://`` URI or
``s3://bucket/prefix``, all read and written through `service.artifacts` (atomic publish: a reader
sees a whole checkpoint or none).
The runner writes the file first and then commits the epoch's rows with its URI in one
transaction, so the database never points at a checkpoint that does not exist.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch

from service import artifacts

logger = logging.getLogger(__name__)

FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read (missing, truncated, another search's, unknown format)."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the last finished epoch and the two actors' state blobs."""

    search_id: int
    epoch: int
    controller: bytes
    shared: bytes
    uri: str


def search_dir(artifact_dir: str, search_id: int) -> str:
    """The folder (URL) holding a search's checkpoints."""
    return artifacts.join(artifact_dir, int(search_id))


def checkpoint_uri(artifact_dir: str, search_id: int, epoch: int) -> str:
    """Where the checkpoint taken after ``epoch`` of ``search_id`` lives."""
    return f"{search_dir(artifact_dir, search_id)}/ckpt-{int(epoch)}.pt"


def state_bytes(state: dict[str, Any]) -> bytes:
    """``torch.save`` of a state dict into bytes: a deep copy that no later training step changes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def state_from_bytes(blob: bytes) -> dict[str, Any]:
    """Inverse of `state_bytes` (tensors and plain values only: ``weights_only=True``)."""
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"a state blob holds {type(state).__name__}, not a dict")
    return state


def save_checkpoint(artifact_dir: str, search_id: int, epoch: int, controller: bytes, shared: bytes) -> str:
    """Write the checkpoint of ``epoch`` atomically; returns its URI."""
    uri = checkpoint_uri(artifact_dir, search_id, epoch)
    payload = {
        "format": FORMAT,
        "search_id": int(search_id),
        "epoch": int(epoch),
        "controller": controller,
        "shared": shared,
        "created_at": datetime.now(UTC).isoformat(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    artifacts.put_bytes(uri, buffer.getvalue())
    return uri


def load_checkpoint(uri: str, *, search_id: int) -> Checkpoint:
    """Read and check a checkpoint. Raises CheckpointError (missing, corrupt, not this search's)."""
    try:
        data = artifacts.get_bytes(uri)
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except artifacts.ArtifactError as e:
        if not isinstance(e, artifacts.ArtifactMissing):
            raise  # the store is unreachable: do not fall back to an older checkpoint or a fresh start
        raise CheckpointError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - unpickling a damaged file can raise anything
        raise CheckpointError(f"cannot read checkpoint {uri}: {type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{uri} is not a format-{FORMAT} checkpoint")
    if payload.get("search_id") != int(search_id):
        raise CheckpointError(f"{uri} belongs to search {payload.get('search_id')}, not {search_id}")
    return Checkpoint(
        search_id=int(search_id),
        epoch=int(payload["epoch"]),
        controller=bytes(payload["controller"]),
        shared=bytes(payload["shared"]),
        uri=uri,
    )


def list_checkpoints(artifact_dir: str, search_id: int) -> list[tuple[int, str]]:
    """``(epoch, uri)`` of every checkpoint file of a search, newest first."""
    folder = search_dir(artifact_dir, search_id)
    names = artifacts.list_names(folder)
    found = [(int(m.group(1)), f"{folder}/{name}") for name in names if (m := _NAME.match(name))]
    return sorted(found, reverse=True)


def newest_checkpoint(
    artifact_dir: str, search_id: int, referenced: str | None, *, max_epoch: int | None
) -> Checkpoint | None:
    """The checkpoint to resume from: ``referenced`` (the search row's), else the newest readable
    file no newer than ``max_epoch`` (the last epoch the database has). None: start from scratch.

    A file newer than the database's epoch (written just before a crash, its rows never committed)
    is skipped; its epoch is run again, which stores nothing twice and reproduces the same rows.
    """
    candidates = [referenced] if referenced else []
    candidates += [
        uri
        for epoch, uri in list_checkpoints(artifact_dir, search_id)
        if uri != referenced and (max_epoch is None or epoch <= max_epoch)
    ]
    for uri in candidates:
        try:
            return load_checkpoint(uri, search_id=search_id)
        except CheckpointError as e:
            logger.warning("search %s: skipping checkpoint: %s", search_id, e)
    return None


def prune_checkpoints(artifact_dir: str, search_id: int, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest checkpoints of a search (never fewer than one); returns
    the URIs removed. Call it after the newest one's epoch is committed."""
    removed = []
    for _, uri in list_checkpoints(artifact_dir, search_id)[max(1, keep) :]:
        if artifacts.delete(uri):  # False: another worker pruned it
            removed.append(uri)
    return removed
