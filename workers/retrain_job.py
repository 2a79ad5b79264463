"""One retrain job (queue item ``retrain:<retrain_id>``, from ``POST /searches/{id}/retrain``).

The worker holds the job's lease (`workers.lease.LeaseKeeper`, key ``lease:retrain:<id>``) and
calls `run_retrain_job`: it builds the search's plan (the retrain ``epochs`` overridden when the
request asked, ``metrics.requested_epochs``), connects Ray and runs the row as the usual retrain
Ray task (`workers.retrain.run_requested_retrain`), which trains, saves the weights and finishes the
row. A worker that stops meanwhile cancels the task, puts the row back to ``queued`` and raises
`SearchInterrupted` (the worker releases the job to the front of the queue); a lost lease leaves
the row to the worker that took the job over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from service.errors import EnasError
from service.settings import Settings
from service.store import Store
from service.store.records import RetrainRecord
from workers.actors import ensure_ray
from workers.config import SearchPlan, build_plan
from workers.failures import describe_error
from workers.lease import LeaseKeeper, LeaseLost
from workers.retrain import run_requested_retrain, summary_of
from workers.search_run import SearchInterrupted

logger = logging.getLogger(__name__)


def plan_for(spec: dict[str, Any], row: RetrainRecord, settings: Settings) -> SearchPlan:
    """The search's plan, with the retrain epochs the request asked for (if any)."""
    plan = build_plan(spec, data_root=settings.data_dir)
    epochs = (row.metrics or {}).get("requested_epochs")
    if not epochs:
        return plan
    return dataclasses.replace(plan, retrain=dataclasses.replace(plan.retrain, epochs=int(epochs)))


def run_retrain_job(
    store: Store,
    row: RetrainRecord,
    spec: dict[str, Any],
    settings: Settings,
    *,
    stop_event: threading.Event,
    keeper: LeaseKeeper,
    cancelled: Callable[[int], bool] = lambda retrain_id: False,
) -> dict[str, Any] | None:
    """Run the queued/running retrain ``row`` of a finished search; returns its summary
    (`workers.retrain.summary_of`), or None when another worker took the job over.

    ``cancelled(retrain_id)`` turning true (``POST /retrains/{id}/cancel``) cancels the Ray task and
    finishes the row ``cancelled``.
    Raises SearchInterrupted (the worker stops; the row is queued again) and the transient
    database/Redis errors (the worker releases the job and retries it).
    """
    try:
        plan = plan_for(spec, row, settings)
        ensure_ray(settings)
    except Exception as e:  # noqa: BLE001 - a job that can never start fails visibly, once
        message = describe_error(e)[0]
        logger.error("retrain %s: cannot start: %s", row.id, message)
        return summary_of(store.finish_retrain(retrain_id=row.id, status="failed", error=message))

    def check() -> None:
        if stop_event.is_set():
            raise SearchInterrupted(f"retrain {row.id}: the worker is stopping")
        keeper.check()

    try:
        return run_requested_retrain(
            store,
            row,
            plan,
            check,
            artifact_dir=str(settings.artifact_dir),
            max_retries=settings.retrain_max_retries,
            cancelled=cancelled,
        )
    except SearchInterrupted:
        with contextlib.suppress(EnasError):  # finished meanwhile, or the database is down
            store.update_retrain(retrain_id=row.id, status="queued")
        raise
    except LeaseLost:
        logger.warning("retrain %s: lease taken over by another worker; leaving it", row.id)
        return None
