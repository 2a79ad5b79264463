"""Retraining derived architectures from scratch, one Ray task each, retried when an attempt fails.

`retrain_architecture` is the task body (plain function, runnable in-process): it marks its
``retrains`` row running (counting the attempt), trains the standalone child
(`enas_core.retrain.retrain`), writes the curve so far after every epoch, and finishes the row with
the test score, the parameter count, FLOPs and the curve, plus the trained child's state_dict
saved atomically as ``<artifact_dir>/<search_id>/retrain-<retrain_id>.pt`` (``artifact_uri``). It
stops early when the search's cancel flag is set in the database.

Failures are bounded and visible: an attempt that raises records its error on the row
(``error``, ``metrics.failures``) and raises `RetrainAttemptFailed`, which Ray retries up to
``max_retries`` times; the last attempt finishes the row ``failed``. A task whose process or
node dies is retried by Ray too, on any node that fits (the next attempt notes the death and the
node it happened on in ``metrics.failures``); every attempt writes its node (``metrics.node``,
``metrics.node_ip``), so a finished row names the node it finally ran on. When Ray gives up, the
driver finishes the row ``failed`` with Ray's error. Results are idempotent: an attempt that finds
its row already finished returns it without training, and finishing twice with the same status
is a no-op in the store.
`retrain_derived` is the driver's side: rows first (so they show as queued), all tasks submitted,
their results gathered. `run_requested_retrain` is the worker's side of one retrain job
(``POST /searches/{id}/retrain``): one task for one existing row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
import redis

from service import artifacts
from service.errors import Conflict, EnasError
from service.queue import Queue
from service.store import Store
from service.store.records import DerivedRecord, RetrainRecord
from workers.checkpoint import search_dir, state_bytes
from workers.config import SearchPlan
from workers.retry import retry_transient

logger = logging.getLogger(__name__)

WAIT_POLL_S = 1.0
FINISH_RETRY_S = 300.0
"""How long a finished attempt keeps retrying to store its result while the database is down."""
KEPT_METRICS = ("requested_epochs",)
"""Metrics set when the row was requested; every attempt's metrics keep them."""


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
    artifact_dir: str | None = None,
) -> dict[str, Any]:
    """Train one architecture from scratch and record the outcome on retrain ``retrain_id``.

    With ``artifact_dir`` the trained weights are saved there (`save_retrained`) and the row's
    ``artifact_uri`` names the file.
    Returns ``{"retrain_id", "architecture_id", "status", "test_score", "params", "error"}``.
    Raises RetrainAttemptFailed when this attempt failed and ``max_retries`` allows another.
    """
    store = Store(store_url)
    try:
        row = store.get_retrain(retrain_id=retrain_id)
        if row.status not in ("queued", "running"):
            return summary_of(row)  # a retried task whose result is already stored
        base = _start_attempt(store, row)
        attempt = int(base["attempts"])
        try:
            outcome = _train(store, search_id, retrain_id, plan, tokens, base, artifact_dir)
        except RetrainCancelled:
            return summary_of(_finish(store, retrain_id, "cancelled"))
        except Exception as e:  # noqa: BLE001 - recorded on the row
            logger.exception("retrain %s: attempt %d failed", retrain_id, attempt)
            return _attempt_failed(store, retrain_id, base, e, final=attempt > max_retries)
        outcome["metrics"].update(base)
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


def retrain_uri(artifact_dir: str, search_id: int, retrain_id: int) -> str:
    """Where the weights of retrain ``retrain_id`` live: ``<artifact_dir>/<search_id>/retrain-<id>.pt``."""
    return f"{search_dir(artifact_dir, search_id)}/retrain-{int(retrain_id)}.pt"


def save_retrained(artifact_dir: str, search_id: int, retrain_id: int, model: Any) -> str:
    """Save ``model``'s state_dict (on the CPU) atomically; returns its URI (`enas_core.export.load_weights`
    and the exported ``model.py``'s ``load_state_dict`` read it)."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    uri = retrain_uri(artifact_dir, search_id, retrain_id)
    artifacts.put_bytes(uri, state_bytes(state))
    return uri


def _start_attempt(store: Store, row: RetrainRecord) -> dict[str, Any]:
    """Count this attempt on the row (status running); note a predecessor that died silently.

    Returns the attempt's base metrics: ``attempts``, ``failures`` and the `KEPT_METRICS`."""
    metrics = dict(row.metrics or {})
    kept = {k: metrics[k] for k in KEPT_METRICS if k in metrics}
    previous = int(metrics.get("attempts", 0))
    failures = list(metrics.get("failures", []))
    if previous and not any(f.get("attempt") == previous for f in failures):
        where = f" on node {metrics['node_ip']} ({metrics['node']})" if metrics.get("node") else ""
        failures.append(
            {
                "attempt": previous,
                "error": f"the task's process or its node died{where} (Ray retried it)",
                "node": metrics.get("node"),
            }
        )
    base = {**kept, **running_node(), "attempts": previous + 1, "failures": failures}
    error = failures[-1]["error"] if failures else None
    store.update_retrain(retrain_id=row.id, status="running", metrics=base, error=error)
    return base


def running_node() -> dict[str, str]:
    """``{"node": Ray node id, "node_ip": its address}`` of the process running this attempt
    (empty outside Ray): each attempt writes it, so the row names the node it finally ran on."""
    if not ray.is_initialized():
        return {}
    return {"node": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}


def _attempt_failed(
    store: Store, retrain_id: int, base: dict[str, Any], error: Exception, *, final: bool
) -> dict[str, Any]:
    """Record a failed attempt; the last one finishes the row, others raise for a Ray retry."""
    attempt = int(base["attempts"])
    message = f"{type(error).__name__}: {error}"[:2000]
    metrics = {**base, "failures": [*base["failures"], {"attempt": attempt, "error": message}]}
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
    artifact_dir: str | None = None,
) -> dict[str, Any]:
    """Run `enas_core.retrain.retrain` (and save the weights under ``artifact_dir``); returns the
    `Store.finish_retrain` fields."""
    from enas_core.retrain import retrain
    from enas_core.runtime import resolve_device

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
    model = result.pop("model", None)
    uri = None
    if artifact_dir and model is not None:
        uri = save_retrained(artifact_dir, search_id, retrain_id, model)
    metrics = {k: v for k, v in result.items() if isinstance(v, int | float | str | type(None))}
    metrics.update(curve=result.get("curve", curve), wall_seconds=time.perf_counter() - began, device=device)
    macs = result.get("macs")
    return {
        "test_score": result.get("test_accuracy", result.get("test_perplexity")),
        "params": result.get("params"),
        "flops": 2 * int(macs) if macs is not None else None,  # one multiply-add = 2 FLOPs
        "metrics": metrics,
        "artifact_uri": uri,
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
    artifact_dir: str | None = None,
    cancelled: Callable[[int], bool] = lambda retrain_id: False,
) -> list[dict[str, Any]]:
    """Retrain each of ``derived`` as a Ray task with the search's resources; return the results.

    A derived architecture already retrained successfully (a replayed search) is not retrained
    again. Each task is retried up to ``max_retries`` times (process death or a failed attempt).
    ``check`` runs while waiting; when it raises, unfinished tasks are cancelled, their rows marked
    cancelled, and the error propagates. ``cancelled(retrain_id)`` tells that one run was cancelled
    on its own (``POST /retrains/{id}/cancel``): its task is cancelled, its row finished
    ``cancelled``, the others go on. ``task`` replaces `retrain_task` (tests inject faults).
    ``artifact_dir``: where the trained weights are saved (None: not saved).
    """
    remote = _remote(task, plan, max_retries)
    refs, results = [], []
    for d in derived:
        row = store.create_retrain(search_id=search_id, architecture_id=d.architecture_id)
        if row.status == "succeeded":
            results.append(summary_of(row))
            continue
        kwargs = {"store_url": store.url, "search_id": search_id, "retrain_id": row.id, "plan": plan}
        ref = remote.remote(
            **kwargs, tokens=list(d.architecture.tokens), max_retries=max_retries, artifact_dir=artifact_dir
        )
        refs.append((row.id, ref))
    try:
        stopped = _wait_all(refs, check, cancelled)
    except BaseException:
        _abandon(store, refs)
        raise
    _abandon(store, [(retrain_id, ref) for retrain_id, ref in refs if retrain_id in stopped])
    return results + [
        summary_of(store.get_retrain(retrain_id=retrain_id))
        if retrain_id in stopped
        else _result(store, retrain_id, ref)
        for retrain_id, ref in refs
    ]


def run_requested_retrain(
    store: Store,
    row: RetrainRecord,
    plan: SearchPlan,
    check: Callable[[], None],
    *,
    artifact_dir: str | None,
    max_retries: int = 0,
    task: Any = None,
    cancelled: Callable[[int], bool] = lambda retrain_id: False,
) -> dict[str, Any]:
    """Run the existing retrain ``row`` (a retrain job) as one Ray task and return its summary.

    ``check`` runs while waiting; when it raises, the task is cancelled (the row is left as it is:
    the caller decides) and the error propagates. When ``cancelled(row.id)`` turns true, the task
    is cancelled and the row finished ``cancelled``. A task Ray gave up on finishes the row ``failed``.
    """
    tokens = list(store.get_architecture(architecture_id=row.architecture_id).tokens)
    ref = _remote(task, plan, max_retries).remote(
        store_url=store.url,
        search_id=row.search_id,
        retrain_id=row.id,
        plan=plan,
        tokens=tokens,
        max_retries=max_retries,
        artifact_dir=artifact_dir,
    )
    try:
        stopped = _wait_all([(row.id, ref)], check, cancelled)
    except BaseException:
        ray.cancel(ref, force=True)
        raise
    if stopped:
        _abandon(store, [(row.id, ref)])
        return summary_of(store.get_retrain(retrain_id=row.id))
    return _result(store, row.id, ref)


def retrain_task_options(plan: SearchPlan, max_retries: int) -> dict[str, Any]:
    """Ray options of each retraining task: the search's resources, the retries, and the ``SPREAD``
    strategy (the top-k tasks go to different nodes among those that fit, instead of packing one)."""
    return {
        **plan.resources.retrain_options(),
        "max_retries": max_retries,
        "retry_exceptions": [RetrainAttemptFailed],
        "scheduling_strategy": "SPREAD",
    }


def _remote(task: Any, plan: SearchPlan, max_retries: int) -> Any:
    """`retrain_task` (or ``task``) with `retrain_task_options`."""
    return (task or retrain_task).options(**retrain_task_options(plan, max_retries))


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


def retrain_cancels(queue: Queue) -> Callable[[int], bool]:
    """``cancelled(retrain_id)`` for `retrain_derived` / `run_requested_retrain`: the run's cancel
    flag in Redis (``POST /retrains/{id}/cancel``); Redis down reads as "not cancelled"."""

    def cancelled(retrain_id: int) -> bool:
        try:
            return queue.cancels.retrain_requested(retrain_id)
        except redis.RedisError:
            return False

    return cancelled


def _wait_all(
    refs: Sequence[tuple[int, Any]], check: Callable[[], None], cancelled: Callable[[int], bool]
) -> set[int]:
    """Wait for every ``(retrain_id, ref)`` task, running ``check`` between polls; a task whose run
    was cancelled on its own is cancelled and no longer waited for. Returns those runs' ids."""
    pending = {ref: retrain_id for retrain_id, ref in refs}
    stopped: set[int] = set()
    while pending:
        check()
        for ref, retrain_id in list(pending.items()):
            if cancelled(retrain_id):
                ray.cancel(ref, force=True)
                stopped.add(retrain_id)
                del pending[ref]
        if pending:
            _, left = ray.wait(list(pending), num_returns=len(pending), timeout=WAIT_POLL_S)
            pending = {ref: pending[ref] for ref in left}
    return stopped


def _abandon(store: Store, refs: Sequence[tuple[int, Any]]) -> None:
    """Cancel unfinished retrain tasks and mark their rows cancelled."""
    for retrain_id, ref in refs:
        ray.cancel(ref, force=True)
        try:
            store.finish_retrain(retrain_id=retrain_id, status="cancelled")
        except EnasError:
            pass  # it finished on its own meanwhile, or the database is down (the row stays open)
