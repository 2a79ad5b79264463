"""What the mutating endpoints do, store and queue together (the routes stay thin).

The database is the source of truth and is written first; the queue only carries ids.
"""

from __future__ import annotations

import logging

import redis

from service.errors import Forbidden, Unavailable
from service.queue import JobQueue
from service.records import SearchRecord
from service.settings import Settings
from service.spec import SearchSpec, check_data_dir, resolve_spec
from service.store import Store

logger = logging.getLogger(__name__)


def _enqueue(store: Store, queue: JobQueue, record: SearchRecord) -> None:
    try:
        queue.push(record.id)
    except redis.RedisError as e:
        # A queued row that no worker will ever take would hang forever: fail it visibly instead.
        store.finish_search(search_id=record.id, status="failed", error=f"could not be queued: {e}")
        raise Unavailable(
            f"search {record.id} was stored but could not be queued (Redis: {e}); "
            "resume it when Redis is back"
        ) from e


def submit_search(
    *, store: Store, queue: JobQueue, spec: SearchSpec, settings: Settings, owner: str
) -> SearchRecord:
    """Resolve and check ``spec``, insert the search (queued), push its id. Returns the new search.

    Raises InvalidInput (data folder), Unavailable (database or Redis down; the row is then
    marked failed if it was written).
    """
    resolved = resolve_spec(spec)
    check_data_dir(resolved, settings.data_dir)
    record = store.create_search(spec=resolved, owner=owner)
    _enqueue(store, queue, record)
    return record


def _check_owner(record: SearchRecord, owner: str, settings: Settings) -> None:
    if settings.token_owners() and record.owner != owner:
        raise Forbidden(f"search {record.id} belongs to {record.owner}")


def cancel_search(
    *, store: Store, queue: JobQueue, search_id: int, owner: str, settings: Settings
) -> SearchRecord:
    """Cancel a search: a queued one at once, a running one at its worker's next batch boundary.

    Idempotent. Raises NotFound, Conflict (already succeeded or failed), Forbidden (not the owner).
    """
    _check_owner(store.get_search(search_id=search_id), owner, settings)
    record = store.request_cancel(search_id=search_id)
    if record.status == "running":
        try:
            queue.request_cancel(search_id)  # workers may watch Redis; the DB flag is the record
        except redis.RedisError as e:
            logger.warning("cancel flag for search %s not set in Redis: %s", search_id, e)
    return record


def resume_search(
    *, store: Store, queue: JobQueue, search_id: int, owner: str, settings: Settings
) -> SearchRecord:
    """Queue a failed or cancelled search again; its worker resumes from the last checkpoint.

    Redis is checked first, so an unreachable one leaves the search as it was (503). If the push
    still fails after the row went back to ``queued``, the row stays queued: the workers'
    reconciler queues it when Redis is back (503 says so).
    Raises NotFound, Conflict (not failed or cancelled), Forbidden, Unavailable.
    """
    _check_owner(store.get_search(search_id=search_id), owner, settings)
    try:
        queue.redis.ping()
    except redis.RedisError as e:
        raise Unavailable(f"Redis is unreachable ({e}); search {search_id} was not resumed") from e
    record = store.requeue_search(search_id=search_id)
    try:
        queue.push(record.id)
    except redis.RedisError as e:
        raise Unavailable(
            f"search {search_id} is queued again but Redis failed ({e}); "
            "a worker picks it up when Redis is back"
        ) from e
    return record
