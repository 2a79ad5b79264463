"""Retraining runs: read one, cancel one (``POST /searches/{id}/retrain`` creates them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api import usecases
from service.api.access import visible_retrain
from service.api.deps import CallerDep, IdPath, QueueDep, StoreDep
from service.api.responses import ONE_ERRORS, WRITE_ERRORS
from service.api.schemas import RetrainPublic, retrain_public

router = APIRouter(prefix="/retrains", tags=["retrains"])


@router.get("/{retrain_id}", response_model=RetrainPublic, responses=ONE_ERRORS)
def get_retrain(retrain_id: IdPath, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """One retraining run: status, attempts, test score, parameters, FLOPs, weights' URI."""
    return retrain_public(visible_retrain(store, caller, retrain_id))


@router.post("/{retrain_id}/cancel", response_model=RetrainPublic, responses=WRITE_ERRORS)
def cancel_retrain(retrain_id: IdPath, store: StoreDep, queue: QueueDep, caller: CallerDep) -> dict[str, Any]:
    """Cancel a retraining run: a queued one at once, a running one within seconds (its Ray task is
    cancelled). Idempotent; 409 once it succeeded or failed; 404 for another owner's."""
    return retrain_public(
        usecases.cancel_retrain(store=store, queue=queue, retrain_id=retrain_id, caller=caller)
    )
