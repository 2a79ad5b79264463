"""Response shapes of the API (``XPublic``) and the functions that build them from store records.

Links are paths relative to the API root.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.store.records import ArchitectureRecord, DerivedRecord, EpochRecord, RetrainRecord, SearchRecord

MAX_ID = 2**53 - 1
"""The largest id the API takes (larger ones are a 422, not a database overflow and a 500): below
the databases' 2^63 and exact as a JSON number everywhere (a double holds integers up to 2^53)."""
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class SearchPublic(BaseModel):
    id: int
    name: str | None
    owner: str
    status: str
    progress: float
    epoch: int | None  # last finished epoch, 0-based; None before the first
    total_epochs: int
    best_reward: float | None
    best_architecture_id: int | None
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    error_traceback: str | None
    cancel_requested: bool
    pending_reason: str | None = Field(
        description="status pending: the Ray resources the search's actors wait for (else null)"
    )
    checkpoint_uri: str | None
    lease_owner: str | None
    spec: dict[str, Any]
    links: dict[str, str]


class SearchList(BaseModel):
    items: list[SearchPublic]
    next_cursor: str | None
    counts: dict[str, int]


class ArchitecturePublic(BaseModel):
    id: int
    search_id: int
    epoch: int
    phase: str
    index: int
    tokens: list[int]
    hash: str
    reward: float | None
    loss: float | None
    accuracy: float | None
    entropy: float | None
    log_prob: float | None
    genotype: dict[str, Any] | None
    created_at: datetime
    links: dict[str, str]


class ArchitectureDetail(ArchitecturePublic):
    structured: dict[str, Any] | None


class ArchitectureList(BaseModel):
    items: list[ArchitecturePublic]
    next_cursor: str | None


class EpochPublic(BaseModel):
    epoch: int
    metrics: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime
    duration_s: float | None


class EpochList(BaseModel):
    items: list[EpochPublic]


class DerivedPublic(BaseModel):
    rank: int
    score: float | None
    architecture_id: int
    architecture: ArchitecturePublic


class DerivedList(BaseModel):
    items: list[DerivedPublic]


class RetrainPublic(BaseModel):
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
    links: dict[str, str]


class RetrainList(BaseModel):
    items: list[RetrainPublic]


class RetrainRequest(BaseModel):
    """Body of ``POST /searches/{id}/retrain``: which architectures (ids of the search, or the best
    ``top_k`` derived ones; neither: the best derived one) and optionally the retrain epochs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"not": {"required": ["architecture_ids", "top_k"]}}
    )

    architecture_ids: list[Id] | None = Field(default=None, min_length=1, max_length=100)
    top_k: int | None = Field(default=None, ge=1, le=100)
    epochs: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_choice(self) -> RetrainRequest:
        if self.architecture_ids is not None and self.top_k is not None:
            raise ValueError("give architecture_ids or top_k, not both")
        return self


def search_public(record: SearchRecord) -> dict[str, Any]:
    """The API form of a search: its record (minus the fencing token) plus timings and links."""
    base = f"/searches/{record.id}"
    links = {
        "self": base,
        "architectures": f"{base}/architectures",
        "epochs": f"{base}/epochs",
        "derived": f"{base}/derived",
        "retrain": f"{base}/retrain",
        "retrains": f"{base}/retrains",
        "events": f"{base}/events",
        "cancel": f"{base}/cancel",
        "resume": f"{base}/resume",
        "page": f"/ui/searches/{record.id}",
    }
    if record.best_architecture_id is not None:
        links["best_architecture"] = f"/architectures/{record.best_architecture_id}"
    duration = None
    if record.started_at is not None:
        duration = (
            (record.finished_at or datetime.now(record.started_at.tzinfo)) - record.started_at
        ).total_seconds()
    fields = {k: v for k, v in vars(record).items() if k != "fencing_token"}
    return {**fields, "name": record.name, "duration_s": duration, "links": links}


def architecture_public(record: ArchitectureRecord) -> dict[str, Any]:
    links = {
        "self": f"/architectures/{record.id}",
        "svg": f"/architectures/{record.id}/svg",
        "search": f"/searches/{record.search_id}",
    }
    return {**vars(record), "links": links}


def epoch_public(record: EpochRecord) -> dict[str, Any]:
    return vars(record).copy()


def derived_public(record: DerivedRecord) -> dict[str, Any]:
    return {
        "rank": record.rank,
        "score": record.score,
        "architecture_id": record.architecture_id,
        "architecture": architecture_public(record.architecture),
    }


def retrain_public(record: RetrainRecord) -> dict[str, Any]:
    links = {
        "search": f"/searches/{record.search_id}",
        "architecture": f"/architectures/{record.architecture_id}",
    }
    return {**vars(record), "links": links}
