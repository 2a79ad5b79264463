"""The state of one search run on the driver, and the checks every batch boundary makes.

`SearchRun` carries what the phases of `workers.runner` share: the store, the queue, the plan, the
fencing token, the worker's stop event and lease. `SearchRun.check` is the batch-boundary check
(stop, lease, cancel); `SearchRun.write` is a store write retried while the database is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from enas_core.genotype import Genotype
from enas_core.spaces import Space
from service.errors import Conflict, EnasError
from service.queue import Queue
from service.settings import Settings
from service.store import Store
from service.store.records import SearchRecord
from workers.config import SearchPlan
from workers.lease import LeaseKeeper, retry_transient

logger = logging.getLogger(__name__)

T = TypeVar("T")
CANCEL_POLL_S = 2.0
"""How often a batch boundary also reads the database's cancel flag (Redis may have missed it)."""


class SearchCancelled(Exception):
    """A cancel was requested (API); the search ends ``cancelled``."""


class SearchInterrupted(Exception):
    """The worker is stopping; the search stays ``running`` and goes back on the queue."""


class SearchFenced(Exception):
    """The store refused a write: another worker claimed the search (newer fencing token)."""


@dataclass
class SearchRun:
    """The state of one run, passed between the phases (the driver's side only)."""

    search_id: int
    store: Store
    queue: Queue
    plan: SearchPlan
    space: Space
    fencing_token: int
    stop_event: threading.Event
    settings: Settings | None = None
    keeper: LeaseKeeper | None = None
    record: SearchRecord | None = None
    genotypes: dict[tuple[int, ...], tuple[dict[str, Any], str]] = field(default_factory=dict)
    _cancel_polled_at: float = 0.0

    def check_owner(self) -> None:
        """Raise SearchInterrupted (worker stopping) or LeaseLost (another worker took over);
        while the lease cannot be renewed (Redis unreachable) wait here until it can."""
        if self.stop_event.is_set():
            raise SearchInterrupted(f"search {self.search_id}: worker stopping")
        if self.keeper is not None:
            self.keeper.check()
            self.keeper.wait_valid(self.stop_event)
            self.keeper.check()
            if self.stop_event.is_set():
                raise SearchInterrupted(f"search {self.search_id}: worker stopping")

    def check(self) -> None:
        """`check_owner`, then raise SearchCancelled when a cancel was requested (Redis flag at
        every batch boundary, the database's flag every CANCEL_POLL_S; either may be down)."""
        self.check_owner()
        try:
            cancelled = self.queue.cancels.requested(self.search_id)
        except redis.RedisError:
            cancelled = False  # Redis down: the database flag below still stops it
        if (
            not cancelled
            and self.store is not None
            and time.monotonic() - self._cancel_polled_at > CANCEL_POLL_S
        ):
            self._cancel_polled_at = time.monotonic()
            try:
                cancelled = self.store.get_search(search_id=self.search_id).cancel_requested
            except EnasError:
                cancelled = False
        if cancelled:
            raise SearchCancelled(f"search {self.search_id}: cancel requested")

    def write(self, what: str, call: Callable[[], T]) -> T:
        """A store call retried with backoff while the database is unreachable.

        Raises SearchFenced when the store answers Conflict (the search is someone else's now),
        SearchInterrupted / LeaseLost when the worker stops or loses the lease meanwhile.
        """
        maximum = self.settings.retry_max_s if self.settings is not None else 30.0
        try:
            return retry_transient(
                call,
                what=f"search {self.search_id}: {what}",
                check=self.check_owner,
                maximum=maximum,
                sleep=self.stop_event.wait,
            )
        except Conflict as e:
            raise SearchFenced(str(e)) from e

    def publish(self, event: dict[str, Any]) -> None:
        """Publish an event for live followers; Redis being down only costs the event."""
        try:
            self.queue.events.publish(self.search_id, event)
        except redis.RedisError as e:
            logger.warning("search %s: %s event not published (%s)", self.search_id, event.get("type"), e)

    def genotype(self, tokens: Sequence[int]) -> tuple[dict[str, Any], str]:
        """``(genotype dict, hash)`` of ``tokens``, memoised for the run."""
        key = tuple(tokens)
        if key not in self.genotypes:
            g = Genotype.of(self.space, key)
            self.genotypes[key] = (g.to_dict(), g.hash())
        return self.genotypes[key]
