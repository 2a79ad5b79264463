"""Retraining derived architectures from scratch, one Ray task each.

`retrain_architecture` is the task body (plain function, runnable in-process): it marks its
``retrains`` row running, trains the standalone child (`enas_core.search.retrain`), writes the
curve so far after every epoch, and finishes the row with the test score, the parameter count,
FLOPs and the curve. It stops early when the search's cancel flag is set in the database.
`retrain_derived` is the driver's side: rows first (so they show as queued), all tasks submitted,
their results gathered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

from service.errors import Conflict
from service.records import DerivedRecord
from service.store import Store
from workers.config import SearchPlan

logger = logging.getLogger(__name__)

WAIT_POLL_S = 1.0


class RetrainCancelled(Exception):
    """The search was cancelled while this retrain ran."""


def retrain_architecture(
    *, store_url: str, search_id: int, retrain_id: int, plan: SearchPlan, tokens: list[int]
) -> dict[str, Any]:
    """Train one architecture from scratch and record the outcome on retrain ``retrain_id``.

    Never raises for a training error: the row ends ``failed`` with the error, or ``cancelled``.
    Returns ``{"retrain_id", "architecture_id", "status", "test_score", "params", "error"}``.
    """
    store = Store(store_url)
    try:
        record = store.update_retrain(retrain_id=retrain_id, status="running")
        summary = {"retrain_id": retrain_id, "architecture_id": record.architecture_id}
        try:
            outcome = _train(store, search_id, retrain_id, plan, tokens)
        except RetrainCancelled:
            store.finish_retrain(retrain_id=retrain_id, status="cancelled")
            return {**summary, "status": "cancelled", "test_score": None, "params": None, "error": None}
        except Exception as e:  # noqa: BLE001 - recorded on the row
            logger.exception("retrain %s failed", retrain_id)
            error = f"{type(e).__name__}: {e}"[:2000]
            store.finish_retrain(retrain_id=retrain_id, status="failed", error=error)
            return {**summary, "status": "failed", "test_score": None, "params": None, "error": error}
        final = store.finish_retrain(retrain_id=retrain_id, status="succeeded", **outcome)
        return {
            **summary,
            "status": "succeeded",
            "test_score": final.test_score,
            "params": final.params,
            "error": None,
        }
    finally:
        store.dispose()


def _train(
    store: Store, search_id: int, retrain_id: int, plan: SearchPlan, tokens: list[int]
) -> dict[str, Any]:
    """Run `enas_core.search.retrain`; returns the `Store.finish_retrain` fields."""
    from enas_core.search import resolve_device, retrain

    curve: list[dict[str, Any]] = []
    began = time.perf_counter()

    def on_epoch(*args: Any) -> None:  # image retraining passes (row), the LM one (epoch, row)
        curve.append(dict(args[-1]))
        store.update_retrain(retrain_id=retrain_id, metrics={"curve": curve})
        if store.get_search(search_id=search_id).cancel_requested:
            raise RetrainCancelled(f"search {search_id} cancelled")

    device = str(resolve_device(plan.resources.device))
    result = retrain(plan.space(), tokens, plan.retrain, plan.dataset.load(), plan.seed, device, on_epoch)
    result.pop("model", None)  # the trained module stays here; exporting it is a later step
    metrics = {k: v for k, v in result.items() if isinstance(v, int | float | str | type(None))}
    metrics.update(curve=result.get("curve", curve), wall_seconds=time.perf_counter() - began, device=device)
    macs = result.get("macs")
    return {
        "test_score": result.get("test_accuracy", result.get("test_perplexity")),
        "params": result.get("params"),
        "flops": 2 * int(macs) if macs is not None else None,  # one multiply-add = 2 FLOPs
        "metrics": metrics,
    }


retrain_task = ray.remote(retrain_architecture)
"""The Ray task; give it resources with ``retrain_task.options(num_cpus=..., num_gpus=...)``."""


def retrain_derived(
    store: Store,
    search_id: int,
    plan: SearchPlan,
    derived: Sequence[DerivedRecord],
    check: Callable[[], None],
) -> list[dict[str, Any]]:
    """Retrain each of ``derived`` as a Ray task with the search's resources; return the results.

    A derived architecture already retrained successfully (a replayed search) is not retrained
    again. ``check`` runs while waiting; when it raises, unfinished tasks are cancelled, their
    rows marked cancelled, and the error propagates.
    """
    refs, results = [], []
    for d in derived:
        row = store.create_retrain(search_id=search_id, architecture_id=d.architecture_id)
        if row.status == "succeeded":
            results.append(
                {
                    "retrain_id": row.id,
                    "architecture_id": d.architecture_id,
                    "status": row.status,
                    "test_score": row.test_score,
                    "params": row.params,
                    "error": row.error,
                }
            )
            continue
        refs.append(
            (
                row.id,
                retrain_task.options(**plan.resources.ray_options()).remote(
                    store_url=store.url,
                    search_id=search_id,
                    retrain_id=row.id,
                    plan=plan,
                    tokens=list(d.architecture.tokens),
                ),
            )
        )
    try:
        _wait_all([ref for _, ref in refs], check)
    except BaseException:
        _abandon(store, refs)
        raise
    return results + list(ray.get([ref for _, ref in refs]))


def _wait_all(refs: list[Any], check: Callable[[], None]) -> None:
    pending = list(refs)
    while pending:
        check()
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=WAIT_POLL_S)


def _abandon(store: Store, refs: Sequence[tuple[int, Any]]) -> None:
    """Cancel unfinished retrain tasks and mark their rows cancelled."""
    for retrain_id, ref in refs:
        ray.cancel(ref, force=True)
        try:
            store.finish_retrain(retrain_id=retrain_id, status="cancelled")
        except Conflict:
            pass  # it finished on its own meanwhile
