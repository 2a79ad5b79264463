"""Retraining derived architectures from scratch, one Ray task each, retried when an attempt fails.

`retrain_architecture` is the task body (plain function, runnable in-process): it marks its
``retrains`` row running (counting the attempt), trains the standalone child
(`enas_core.search.retrain`), writes the curve so far after every epoch, and finishes the row with
the test score, the parameter count, FLOPs and the curve. It stops early when the search's cancel
flag is set in the database.

Failures are bounded and visible: an attempt that raises records its error on the row
(``error``, ``metrics.failures``) and raises `RetrainAttemptFailed`, which Ray retries up to
``max_retries`` times; the last attempt finishes the row ``failed``. A task whose process dies is
retried by Ray too (the next attempt notes it); when Ray gives up, the driver finishes the row
``failed`` with Ray's error. Results are idempotent: an attempt that finds its row already finished
returns it without training, and finishing twice with the same status is a no-op in the store.
`retrain_derived` is the driver's side: rows first (so they show as queued), all tasks submitted,
their results gathered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray

from service.errors import Conflict, EnasError
from service.records import DerivedRecord, RetrainRecord
from service.store import Store
from workers.config import SearchPlan
from workers.lease import retry_transient

logger = logging.getLogger(__name__)

WAIT_POLL_S = 1.0
FINISH_RETRY_S = 300.0
"""How long a finished attempt keeps retrying to store its result while the database is down."""


class RetrainCancelled(Exception):
    """The search was cancelled while this retrain ran."""


class RetrainAttemptFailed(RuntimeError):
    """One attempt failed and was recorded on the row; Ray retries the task (``retry_exceptions``)."""


def retrain_architecture(
    *,
    store_url: str,
    search_id: int,
    retrain_id: int,
    plan: SearchPlan,
    tokens: list[int],
    max_retries: int = 0,
) -> dict[str, Any]:
    """Train one architecture from scratch and record the outcome on retrain ``retrain_id``.

    Returns ``{"retrain_id", "architecture_id", "status", "test_score", "params", "error"}``.
    Raises RetrainAttemptFailed when this attempt failed and ``max_retries`` allows another.
    """
    store = Store(store_url)
    try:
        row = store.get_retrain(retrain_id=retrain_id)
        if row.status not in ("queued", "running"):
            return summary_of(row)  # a retried task whose result is already stored
        attempt, failures = _start_attempt(store, row)
        try:
            outcome = _train(
                store, search_id, retrain_id, plan, tokens, {"attempts": attempt, "failures": failures}
            )
        except RetrainCancelled:
            return summary_of(_finish(store, retrain_id, "cancelled"))
        except Exception as e:  # noqa: BLE001 - recorded on the row
            logger.exception("retrain %s: attempt %d failed", retrain_id, attempt)
            return _attempt_failed(store, retrain_id, attempt, failures, e, final=attempt > max_retries)
        outcome["metrics"].update(attempts=attempt, failures=failures)
        return summary_of(_finish(store, retrain_id, "succeeded", **outcome))
    finally:
        store.dispose()


def summary_of(row: RetrainRecord) -> dict[str, Any]:
    """The result a retrain task returns (and the ``retrained`` event lists)."""
    return {
        "retrain_id": row.id,
        "architecture_id": row.architecture_id,
        "status": row.status,
        "test_score": row.test_score,
        "params": row.params,
        "error": row.error,
    }


def _start_attempt(store: Store, row: RetrainRecord) -> tuple[int, list[dict[str, Any]]]:
    """Count this attempt on the row (status running); note a predecessor that died silently."""
    metrics = dict(row.metrics or {})
    previous = int(metrics.get("attempts", 0))
    failures = list(metrics.get("failures", []))
    if previous and not any(f.get("attempt") == previous for f in failures):
        failures.append({"attempt": previous, "error": "the task's process died (Ray retried it)"})
    attempt = previous + 1
    error = failures[-1]["error"] if failures else None
    store.update_retrain(
        retrain_id=row.id, status="running", metrics={"attempts": attempt, "failures": failures}, error=error
    )
    return attempt, failures


def _attempt_failed(
    store: Store,
    retrain_id: int,
    attempt: int,
    failures: list[dict[str, Any]],
    error: Exception,
    *,
    final: bool,
) -> dict[str, Any]:
    """Record a failed attempt; the last one finishes the row, others raise for a Ray retry."""
    message = f"{type(error).__name__}: {error}"[:2000]
    failures = [*failures, {"attempt": attempt, "error": message}]
    metrics = {"attempts": attempt, "failures": failures}
    if final:
        return summary_of(_finish(store, retrain_id, "failed", error=message, metrics=metrics))
    try:
        store.update_retrain(retrain_id=retrain_id, status="queued", metrics=metrics, error=message)
    except EnasError as e:  # the database may be the failure: the next attempt notes a silent death
        logger.warning("retrain %s: attempt %d not recorded (%s)", retrain_id, attempt, e)
    raise RetrainAttemptFailed(f"retrain {retrain_id} attempt {attempt}: {message}") from error


def _finish(store: Store, retrain_id: int, status: str, **fields: Any) -> RetrainRecord:
    """`Store.finish_retrain`, retried for a while when the database is unreachable."""
    deadline = time.monotonic() + FINISH_RETRY_S

    def give_up() -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"retrain {retrain_id}: database unreachable for {FINISH_RETRY_S:.0f}s")

    return retry_transient(
        lambda: store.finish_retrain(retrain_id=retrain_id, status=status, **fields),
        what=f"retrain {retrain_id}: finish {status}",
        check=give_up,
    )


def _train(
    store: Store,
    search_id: int,
    retrain_id: int,
    plan: SearchPlan,
    tokens: list[int],
    attempts: dict[str, Any],
) -> dict[str, Any]:
    """Run `enas_core.search.retrain`; returns the `Store.finish_retrain` fields."""
    from enas_core.search import resolve_device, retrain

    curve: list[dict[str, Any]] = []
    began = time.perf_counter()

    def on_epoch(*args: Any) -> None:  # image retraining passes (row), the LM one (epoch, row)
        curve.append(dict(args[-1]))
        try:  # progress is best effort; the final write below carries the whole curve
            store.update_retrain(retrain_id=retrain_id, metrics={**attempts, "curve": curve})
            cancelled = store.get_search(search_id=search_id).cancel_requested
        except EnasError as e:
            logger.warning("retrain %s: progress not stored (%s)", retrain_id, e)
            return
        if cancelled:
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


retrain_task: Any = ray.remote(retrain_architecture)  # type: ignore[arg-type]
"""The Ray task; `retrain_derived` gives it the search's resources and retry options."""


def retrain_derived(
    store: Store,
    search_id: int,
    plan: SearchPlan,
    derived: Sequence[DerivedRecord],
    check: Callable[[], None],
    *,
    max_retries: int = 0,
    task: Any = None,
) -> list[dict[str, Any]]:
    """Retrain each of ``derived`` as a Ray task with the search's resources; return the results.

    A derived architecture already retrained successfully (a replayed search) is not retrained
    again. Each task is retried up to ``max_retries`` times (process death or a failed attempt).
    ``check`` runs while waiting; when it raises, unfinished tasks are cancelled, their rows marked
    cancelled, and the error propagates. ``task`` replaces `retrain_task` (tests inject faults).
    """
    remote: Any = (task or retrain_task).options(
        **plan.resources.ray_options(), max_retries=max_retries, retry_exceptions=[RetrainAttemptFailed]
    )
    refs, results = [], []
    for d in derived:
        row = store.create_retrain(search_id=search_id, architecture_id=d.architecture_id)
        if row.status == "succeeded":
            results.append(summary_of(row))
            continue
        kwargs = {"store_url": store.url, "search_id": search_id, "retrain_id": row.id, "plan": plan}
        ref = remote.remote(**kwargs, tokens=list(d.architecture.tokens), max_retries=max_retries)
        refs.append((row.id, ref))
    try:
        _wait_all([ref for _, ref in refs], check)
    except BaseException:
        _abandon(store, refs)
        raise
    return results + [_result(store, retrain_id, ref) for retrain_id, ref in refs]


def _result(store: Store, retrain_id: int, ref: Any) -> dict[str, Any]:
    """A task's result; when Ray gave up on it, the row is finished ``failed`` with Ray's error."""
    try:
        return dict(ray.get(ref))
    except (ray.exceptions.RayError, RetrainAttemptFailed) as e:
        from workers.failures import describe_error

        message = describe_error(e)[0]
        logger.error("retrain %s: gave up after retries: %s", retrain_id, message)
        try:
            return summary_of(_finish(store, retrain_id, "failed", error=message))
        except Conflict:  # it finished otherwise meanwhile
            return summary_of(store.get_retrain(retrain_id=retrain_id))


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
        except EnasError:
            pass  # it finished on its own meanwhile, or the database is down (the row stays open)
