"""Retraining runs: read one, cancel one (``POST /searches/{id}/retrain`` creates them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api import usecases
from service.api.deps import IdPath, OwnerDep, QueueDep, SettingsDep, StoreDep
from service.api.responses import ONE_ERRORS, WRITE_ERRORS
from service.api.schemas import RetrainPublic, retrain_public

router = APIRouter(prefix="/retrains", tags=["retrains"])


@router.get("/{retrain_id}", response_model=RetrainPublic, responses=ONE_ERRORS)
def get_retrain(retrain_id: IdPath, store: StoreDep) -> dict[str, Any]:
    """One retraining run: status, attempts, test score, parameters, FLOPs, weights' URI."""
    return retrain_public(store.get_retrain(retrain_id=retrain_id))


@router.post("/{retrain_id}/cancel", response_model=RetrainPublic, responses=WRITE_ERRORS)
def cancel_retrain(
    retrain_id: IdPath, store: StoreDep, queue: QueueDep, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """Cancel a retraining run: a queued one at once, a running one within seconds (its Ray task is
    cancelled). Idempotent; 409 once it succeeded or failed."""
    record = usecases.cancel_retrain(
        store=store, queue=queue, retrain_id=retrain_id, owner=owner, settings=settings
    )
    return retrain_public(record)
