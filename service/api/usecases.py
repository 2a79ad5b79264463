"""The use-cases of the mutating endpoints: submit, cancel, resume, retrain, each the store and the
queue together (the routes stay thin).

The database is the source of truth and is written first; the queue only carries ids.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis

from service import cost, quotas
from service.api.access import visible_architecture, visible_retrain, visible_search
from service.api.schemas import RetrainRequest
from service.auth import Caller
from service.errors import Conflict, InvalidInput, NotFound, Unavailable
from service.queue import Job, Queue
from service.settings import Settings
from service.spec import SearchSpec, check_data_dir, confine_data_dir, resolve_spec
from service.store import Store
from service.store.records import RetrainRecord, SearchRecord

logger = logging.getLogger(__name__)


def _enqueue(store: Store, queue: Queue, record: SearchRecord) -> None:
    try:
        queue.jobs.push(Job.search(record.id))
    except redis.RedisError as e:
        # A queued row that no worker will ever take would hang forever: fail it visibly instead.
        store.finish_search(search_id=record.id, status="failed", error=f"could not be queued: {e}")
        raise Unavailable(
            f"search {record.id} was stored but could not be queued (Redis: {e}); "
            "resume it when Redis is back"
        ) from e


def submit_search(
    *, store: Store, queue: Queue, spec: SearchSpec, settings: Settings, caller: Caller
) -> SearchRecord:
    """Resolve and check ``spec``, insert the search (queued), push its id. Returns the new search.

    The stored spec carries its estimated cost (``spec["cost"]``, `service.cost.estimate`).
    Raises OverQuota (429: over a quota of ``service.quotas``), InvalidInput (cost above
    ``ENAS_MAX_COST`` or the daily quota; data folder outside the data roots, or not
    of the dataset's layout), Unavailable (database or Redis down; the row is then marked failed if
    it was written).
    """
    resolved = resolve_spec(spec)
    resolved["cost"] = _checked_cost(resolved, settings)
    quotas.check_quotas(
        store, settings, owner=caller.name, cost=resolved["cost"]["macs"], now=datetime.now(UTC)
    )
    resolved = confine_data_dir(resolved, settings.data_root_paths())
    check_data_dir(resolved, settings.data_dir)
    record = store.create_search(spec=resolved, owner=caller.name)
    _enqueue(store, queue, record)
    return record


def _checked_cost(resolved: dict[str, Any], settings: Settings) -> dict[str, float]:
    """The search's estimated cost; InvalidInput naming the limit when it is above ``max_cost``."""
    estimate = cost.estimate(resolved)
    if estimate["macs"] > settings.max_cost:
        raise InvalidInput(
            f"the search's estimated cost, {estimate['macs']:.3g} MACs "
            f"(search {estimate['search_macs']:.3g}, retraining {estimate['retrain_macs']:.3g}), "
            "is above the limit ENAS_MAX_COST = "
            f"{settings.max_cost:.3g}: lower the epochs, the child or retrain sizes or steps",
            field="cost",
        )
    return estimate


def cancel_search(*, store: Store, queue: Queue, search_id: int, caller: Caller) -> SearchRecord:
    """Cancel a search: a queued one at once, a running one at its worker's next batch boundary.

    Idempotent. Raises NotFound (also for another owner's search), Conflict (already succeeded or failed).
    """
    visible_search(store, caller, search_id)  # another owner's: NotFound
    record = store.request_cancel(search_id=search_id)
    if record.status in ("running", "pending"):
        try:
            queue.cancels.request(search_id)  # workers may watch Redis; the DB flag is the record
        except redis.RedisError as e:
            logger.warning("cancel flag for search %s not set in Redis: %s", search_id, e)
    return record


def cancel_retrain(*, store: Store, queue: Queue, retrain_id: int, caller: Caller) -> RetrainRecord:
    """Cancel a retraining run: a queued one at once (its job is skipped when taken), a running one
    by its worker within seconds (the Ray task is cancelled, the row finished ``cancelled``).

    Idempotent. Raises NotFound (also for another owner's run), Conflict (already succeeded or
    failed), Unavailable (a running one while Redis is unreachable: nothing changed).
    """
    row = visible_retrain(store, caller, retrain_id)
    if row.status in ("succeeded", "failed"):
        raise Conflict(f"retrain {retrain_id} is already {row.status}")
    if row.status == "queued":
        try:
            return store.finish_retrain(retrain_id=retrain_id, status="cancelled")
        except Conflict:  # a worker started it meanwhile: ask that worker
            row = store.get_retrain(retrain_id=retrain_id)
    if row.status == "running":
        try:
            queue.cancels.request_retrain(retrain_id)
        except redis.RedisError as e:
            raise Unavailable(f"Redis is unreachable ({e}); retrain {retrain_id} goes on") from e
    return row


def resume_search(*, store: Store, queue: Queue, search_id: int, caller: Caller) -> SearchRecord:
    """Queue a failed or cancelled search again; its worker resumes from the last checkpoint.

    Redis is checked first, so an unreachable one leaves the search as it was (503). If the push
    still fails after the row went back to ``queued``, the row stays queued: the workers'
    reconciler queues it when Redis is back (503 says so).
    Raises NotFound (also another owner's), Conflict (not failed or cancelled), Unavailable.
    """
    visible_search(store, caller, search_id)  # another owner's: NotFound
    try:
        queue.redis.ping()
    except redis.RedisError as e:
        raise Unavailable(f"Redis is unreachable ({e}); search {search_id} was not resumed") from e
    record = store.requeue_search(search_id=search_id)
    try:
        queue.jobs.push(Job.search(record.id))
    except redis.RedisError as e:
        raise Unavailable(
            f"search {search_id} is queued again but Redis failed ({e}); "
            "a worker picks it up when Redis is back"
        ) from e
    return record


def retrain_search(
    *, store: Store, queue: Queue, search_id: int, request: RetrainRequest, caller: Caller
) -> list[RetrainRecord]:
    """Create (or find) the retrain rows of the chosen architectures and queue a job for each queued one.

    Allowed on a succeeded, failed or cancelled search. An architecture already queued, running or
    retrained successfully keeps its row (returned as it is). Redis is checked first (503, nothing
    changed); a push that still fails leaves the rows queued for the reconciler (503).
    Raises NotFound (search, architecture), Conflict (search queued or running; no derived
    architectures), InvalidInput (an architecture of another search), Unavailable.
    """
    search = visible_search(store, caller, search_id)  # another owner's: NotFound
    if search.status in ("queued", "running", "pending"):
        raise Conflict(f"search {search_id} is {search.status}: retrain it once it has finished")
    architecture_ids = _chosen_architectures(store, caller, search_id, request)
    try:
        queue.redis.ping()
    except redis.RedisError as e:
        raise Unavailable(f"Redis is unreachable ({e}); nothing was queued") from e
    rows = [_retrain_row(store, search_id, a, request.epochs) for a in architecture_ids]
    try:
        for row in rows:
            if row.status == "queued":
                queue.jobs.push(Job.retrain(row.id))
    except redis.RedisError as e:
        raise Unavailable(
            f"the retrains of search {search_id} are queued but Redis failed ({e}); "
            "a worker picks them up when Redis is back"
        ) from e
    return rows


def _chosen_architectures(store: Store, caller: Caller, search_id: int, request: RetrainRequest) -> list[int]:
    """The architecture ids a retrain request names (checked to be the search's), in order."""
    if request.architecture_ids is not None:
        for architecture_id in request.architecture_ids:
            chosen = visible_architecture(store, caller, architecture_id)  # NotFound: 404
            if chosen.search_id != search_id:
                raise InvalidInput(  # naming neither the other search nor its owner
                    f"architecture {architecture_id} is not an architecture of search {search_id}",
                    field="architecture_ids",
                )
        return list(dict.fromkeys(request.architecture_ids))
    derived = store.list_derived(search_id=search_id)
    if not derived:
        raise Conflict(f"search {search_id} has no derived architectures: name them (architecture_ids)")
    return [d.architecture_id for d in derived[: request.top_k or 1]]


def _retrain_row(store: Store, search_id: int, architecture_id: int, epochs: int | None) -> RetrainRecord:
    """The retrain row of one architecture (new and queued, or the existing one); a queued row that
    no attempt started yet records the requested epochs (``metrics.requested_epochs``) for the worker."""
    row = store.create_retrain(search_id=search_id, architecture_id=architecture_id)
    if epochs is not None and row.status == "queued" and not row.metrics:
        try:
            row = store.update_retrain(retrain_id=row.id, metrics={"requested_epochs": epochs})
        except (Conflict, NotFound):  # a worker got to it first
            pass
    return row
