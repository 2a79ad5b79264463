"""The tables (SQLAlchemy 2 typed models). Schema changes go through ``service/store/migrations``.

Times are UTC. JSON columns use JSONB on PostgreSQL, but for the architectures' tokens and
genotype (plain ``json``: see migration 0002).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
# Per-row JSON written in bulk and only ever read whole (migration 0002): PostgreSQL's ``json``
# keeps the text as given, several times cheaper to insert than ``jsonb``.
TextJSONType = JSON()
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
IdType = BigInteger().with_variant(Integer(), "sqlite")

SEARCH_STATUSES = ("queued", "running", "pending", "succeeded", "failed", "cancelled")
"""``pending``: claimed by a worker whose actors wait for busy Ray resources (``pending_reason``)."""
ACTIVE_STATUSES = ("running", "pending")
"""Held by a worker: its lease, fencing token and cancel flag apply."""
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
PHASES = ("train", "sample", "derive")
RETRAIN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Search(Base):
    __tablename__ = "searches"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (the queue carries ids)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200), default="anonymous")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    epoch: Mapped[int | None] = mapped_column(Integer)  # last finished epoch (0-based); None before
    total_epochs: Mapped[int] = mapped_column(Integer)
    best_reward: Mapped[float | None] = mapped_column(Float)
    # No FK: architectures reference searches, a cycle would complicate inserts and deletes.
    best_architecture_id: Mapped[int | None] = mapped_column(IdType)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_reason: Mapped[str | None] = mapped_column(Text)


class Architecture(Base):
    __tablename__ = "architectures"
    __table_args__ = (
        UniqueConstraint("search_id", "epoch", "phase", "index", name="uq_architectures_slot"),
        Index("ix_architectures_search_reward", "search_id", "reward"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(IdType, ForeignKey("searches.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(8))
    index: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[list[int]] = mapped_column(TextJSONType)
    genotype: Mapped[dict[str, Any] | None] = mapped_column(TextJSONType)
    hash: Mapped[str] = mapped_column(String(16))  # no index: nothing looks rows up by hash (0002)
    reward: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    entropy: Mapped[float | None] = mapped_column(Float)
    log_prob: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Epoch(Base):
    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("search_id", "epoch", name="uq_epochs_search_epoch"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(IdType, ForeignKey("searches.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float)


class Derived(Base):
    __tablename__ = "derived"
    __table_args__ = (UniqueConstraint("search_id", "rank", name="uq_derived_search_rank"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(IdType, ForeignKey("searches.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    architecture_id: Mapped[int] = mapped_column(IdType, ForeignKey("architectures.id", ondelete="CASCADE"))
    score: Mapped[float | None] = mapped_column(Float)


class Retrain(Base):
    __tablename__ = "retrains"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(IdType, ForeignKey("searches.id", ondelete="CASCADE"), index=True)
    architecture_id: Mapped[int] = mapped_column(IdType, ForeignKey("architectures.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    params: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    test_score: Mapped[float | None] = mapped_column(Float)
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
