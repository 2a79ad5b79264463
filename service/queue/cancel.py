"""Cancel flags: the API asks the worker running a search to stop at its next batch boundary, or
the one running a retraining run to stop it (its Ray task cancelled).

The database's ``cancel_requested`` column is the record; the flag here is what a worker watches
between two writes. `service.queue.jobs.Jobs.push` of a search clears it (a new run request).
"""

from __future__ import annotations

import redis

from service.queue.keys import Keys

DEFAULT_CANCEL_TTL_S = 7 * 24 * 3600


class CancelFlags:
    """One flag per search, with a TTL (``ttl_s``)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int = DEFAULT_CANCEL_TTL_S) -> None:
        self._redis = client
        self._keys = keys
        self._ttl_s = ttl_s

    def request(self, search_id: int) -> None:
        """Ask the worker running ``search_id`` to stop at its next batch boundary (idempotent)."""
        self._redis.set(self._keys.cancel(search_id), "1", ex=self._ttl_s)

    def requested(self, search_id: int) -> bool:
        """Whether a cancel was requested for ``search_id`` since its last push."""
        return bool(self._redis.exists(self._keys.cancel(search_id)))

    def request_retrain(self, retrain_id: int) -> None:
        """Ask the worker running retrain ``retrain_id`` to stop it (idempotent)."""
        self._redis.set(self._keys.cancel_retrain(retrain_id), "1", ex=self._ttl_s)

    def retrain_requested(self, retrain_id: int) -> bool:
        """Whether a cancel was requested for retrain ``retrain_id``."""
        return bool(self._redis.exists(self._keys.cancel_retrain(retrain_id)))
