"""Searches: submit, list, read, cancel, resume, and their architectures, epochs, results, events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service.api import usecases
from service.api.deps import HubDep, IdPath, OwnerDep, QueueDep, SettingsDep, StoreDep
from service.api.responses import ONE_ERRORS, READ_ERRORS, SUBMIT_ERRORS, WRITE_ERRORS, errors
from service.api.routes import events
from service.api.schemas import (
    ArchitectureList,
    DerivedList,
    EpochList,
    RetrainList,
    RetrainRequest,
    SearchList,
    SearchPublic,
    architecture_public,
    derived_public,
    epoch_public,
    retrain_public,
    search_public,
)
from service.spec import SearchSpec

router = APIRouter(prefix="/searches", tags=["searches"])

MAX_EPOCH = 1_000_000
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="the next_cursor of the previous page (opaque); empty or absent: the first page",
    ),
]
Status = Literal["queued", "running", "pending", "succeeded", "failed", "cancelled"]


@router.post("", status_code=201, response_model=SearchPublic, responses=SUBMIT_ERRORS)
def submit_search(
    spec: SearchSpec, store: StoreDep, queue: QueueDep, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Submit a search: stored as ``queued``, then its id is pushed on the job queue."""
    record = usecases.submit_search(store=store, queue=queue, spec=spec, settings=settings, owner=owner)
    return search_public(record)


@router.get("", response_model=SearchList, responses=READ_ERRORS)
def list_searches(
    store: StoreDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Searches, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    records, next_cursor = store.list_searches(status=status, limit=limit, cursor=cursor or None)
    return {
        "items": [search_public(r) for r in records],
        "next_cursor": next_cursor,
        "counts": store.counts_by_status(),
    }


@router.get("/{search_id}", response_model=SearchPublic, responses=ONE_ERRORS)
def get_search(search_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """One search: status, progress, best reward, timings, resolved spec, error, links."""
    return search_public(store.get_search(search_id=search_id))


@router.post("/{search_id}/cancel", response_model=SearchPublic, responses=WRITE_ERRORS)
def cancel_search(
    search_id: IdPath, store: StoreDep, queue: QueueDep, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Cancel (cooperative for a running search). Idempotent; 409 for a succeeded or failed search."""
    record = usecases.cancel_search(
        store=store, queue=queue, search_id=search_id, owner=owner, settings=settings
    )
    return search_public(record)


@router.post("/{search_id}/resume", response_model=SearchPublic, responses=WRITE_ERRORS)
def resume_search(
    search_id: IdPath, store: StoreDep, queue: QueueDep, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Queue a failed or cancelled search again (it resumes from its last checkpoint); else 409."""
    record = usecases.resume_search(
        store=store, queue=queue, search_id=search_id, owner=owner, settings=settings
    )
    return search_public(record)


@router.get("/{search_id}/architectures", response_model=ArchitectureList, responses=ONE_ERRORS)
def list_architectures(
    search_id: IdPath,
    store: StoreDep,
    epoch: Annotated[int | None, Query(ge=0, le=MAX_EPOCH)] = None,
    phase: Literal["train", "sample", "derive"] | None = None,
    order: Literal["index", "reward"] = "index",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The search's architectures (sampled, trained, derived), by index or best reward first."""
    records, next_cursor = store.list_architectures(
        search_id=search_id, epoch=epoch, phase=phase, order=order, limit=limit, cursor=cursor or None
    )
    return {"items": [architecture_public(r) for r in records], "next_cursor": next_cursor}


@router.get("/{search_id}/epochs", response_model=EpochList, responses=ONE_ERRORS)
def list_epochs(search_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """Per-epoch metrics, in order (for the curves)."""
    return {"items": [epoch_public(r) for r in store.list_epochs(search_id=search_id)]}


@router.get("/{search_id}/derived", response_model=DerivedList, responses=ONE_ERRORS)
def list_derived(search_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """The derived architectures, best first."""
    return {"items": [derived_public(r) for r in store.list_derived(search_id=search_id)]}


@router.post("/{search_id}/retrain", status_code=202, response_model=RetrainList, responses=WRITE_ERRORS)
def retrain_search(
    search_id: IdPath,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    owner: OwnerDep,
    request: RetrainRequest | None = None,
) -> dict[str, Any]:
    """Retrain chosen architectures (``architecture_ids``) or the best ``top_k`` derived ones
    (default: the best one) of a finished search, optionally for ``epochs``; 202 with the rows
    (queued for a worker; an architecture already retrained keeps its row). 409 while the search
    is queued or running, 422 for an architecture of another search."""
    rows = usecases.retrain_search(
        store=store,
        queue=queue,
        search_id=search_id,
        request=request or RetrainRequest(),
        owner=owner,
        settings=settings,
    )
    return {"items": [retrain_public(r) for r in rows]}


@router.get("/{search_id}/retrains", response_model=RetrainList, responses=ONE_ERRORS)
def list_retrains(search_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """The retraining runs of the search's architectures and their results."""
    return {"items": [retrain_public(r) for r in store.list_retrains(search_id=search_id)]}


@router.get(
    "/{search_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **ONE_ERRORS, **errors(429)},
)
async def follow_events(
    search_id: IdPath, store: StoreDep, queue: QueueDep, hub: HubDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-Sent Events: the search's progress events as the worker publishes them.

    Starts with the latest state (the last event, or one built from the database), then each new
    event, with heartbeat comments while idle; ends after a ``finished`` event. See
    `service.api.routes.events`. 429 past ``ENAS_SSE_MAX_FOLLOWERS`` open streams.
    """
    return await events.event_response(
        store, hub, queue.events, search_id, heartbeat_s=settings.sse_heartbeat_s
    )
