"""Frozen snapshots returned by :class:`service.store.Store` (never live ORM objects).

Each has ``to_dict()`` giving JSON-ready values (times as ISO 8601 UTC strings ending in ``Z``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, overload

from service.store import models


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones, which are UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class _Record:
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every record is a dataclass

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _iso(value) if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class SearchRecord(_Record):
    id: int
    owner: str
    status: str
    spec: dict[str, Any]
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    error_traceback: str | None
    progress: float
    epoch: int | None
    total_epochs: int
    best_reward: float | None
    best_architecture_id: int | None
    checkpoint_uri: str | None
    lease_owner: str | None
    fencing_token: int
    cancel_requested: bool
    pending_reason: str | None

    @property
    def name(self) -> str | None:
        """The user's name for the search (``spec["name"]``)."""
        return self.spec.get("name")

    @property
    def is_terminal(self) -> bool:
        """True once the search succeeded, failed or was cancelled."""
        return self.status in models.TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row: models.Search) -> SearchRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            status=row.status,
            spec=dict(row.spec),
            seed=row.seed,
            created_at=as_utc(row.created_at),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            error=row.error,
            error_traceback=row.error_traceback,
            progress=row.progress,
            epoch=row.epoch,
            total_epochs=row.total_epochs,
            best_reward=row.best_reward,
            best_architecture_id=row.best_architecture_id,
            checkpoint_uri=row.checkpoint_uri,
            lease_owner=row.lease_owner,
            fencing_token=row.fencing_token,
            cancel_requested=row.cancel_requested,
            pending_reason=row.pending_reason,
        )


@dataclass(frozen=True)
class ArchitectureRecord(_Record):
    id: int
    search_id: int
    epoch: int
    phase: str
    index: int
    tokens: list[int]
    genotype: dict[str, Any] | None
    hash: str
    reward: float | None
    loss: float | None
    accuracy: float | None
    entropy: float | None
    log_prob: float | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Architecture) -> ArchitectureRecord:
        return cls(
            id=row.id,
            search_id=row.search_id,
            epoch=row.epoch,
            phase=row.phase,
            index=row.index,
            tokens=list(row.tokens),
            genotype=None if row.genotype is None else dict(row.genotype),
            hash=row.hash,
            reward=row.reward,
            loss=row.loss,
            accuracy=row.accuracy,
            entropy=row.entropy,
            log_prob=row.log_prob,
            created_at=as_utc(row.created_at),
        )


@dataclass(frozen=True)
class EpochRecord(_Record):
    search_id: int
    epoch: int
    metrics: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime
    duration_s: float | None

    @classmethod
    def from_row(cls, row: models.Epoch) -> EpochRecord:
        return cls(
            search_id=row.search_id,
            epoch=row.epoch,
            metrics=dict(row.metrics),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            duration_s=row.duration_s,
        )


@dataclass(frozen=True)
class DerivedRecord(_Record):
    search_id: int
    rank: int
    architecture_id: int
    score: float | None
    architecture: ArchitectureRecord

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["architecture"] = self.architecture.to_dict()
        return out


@dataclass(frozen=True)
class RetrainRecord(_Record):
    id: int
    search_id: int
    architecture_id: int
    status: str
    params: int | None
    flops: int | None
    metrics: dict[str, Any] | None
    test_score: float | None
    artifact_uri: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: models.Retrain) -> RetrainRecord:
        return cls(
            id=row.id,
            search_id=row.search_id,
            architecture_id=row.architecture_id,
            status=row.status,
            params=row.params,
            flops=row.flops,
            metrics=None if row.metrics is None else dict(row.metrics),
            test_score=row.test_score,
            artifact_uri=row.artifact_uri,
            error=row.error,
            created_at=as_utc(row.created_at),
            finished_at=as_utc(row.finished_at),
        )
