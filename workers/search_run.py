"""A worker's claim on a running search, and the state of one run on the driver.

`SearchClaim` is what owning a running search takes: the store, the queue, the settings, the row as
this worker marked it running (its fencing token), the worker's stop event and lease.
`SearchClaim.check` is the batch-boundary check (stop, lease, cancel); `SearchClaim.write` is a
store write retried while the database is down; `SearchClaim.publish` a best-effort event.
`claim_search` marks a search running and builds its claim. `SearchRun` adds what the phases of
`workers.runner` share once the spec is turned into a plan: the plan, its space, the genotype memo.
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
from workers import tensorboard
from workers.config import SearchPlan
from workers.lease import LeaseKeeper
from workers.retry import retry_transient

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
class SearchClaim:
    """A worker's claim on one running search (the driver's side only).

    ``record`` is the row as `claim_search` marked it running: its fencing token goes with every
    write. ``keeper`` is the worker's lease keeper; None for a run outside a worker (no lease).
    """

    record: SearchRecord
    store: Store
    queue: Queue
    settings: Settings
    stop_event: threading.Event
    keeper: LeaseKeeper | None = None
    _cancel_polled_at: float = 0.0

    @property
    def search_id(self) -> int:
        return self.record.id

    @property
    def fencing_token(self) -> int:
        return self.record.fencing_token

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
        if not cancelled and time.monotonic() - self._cancel_polled_at > CANCEL_POLL_S:
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
        try:
            return retry_transient(
                call,
                what=f"search {self.search_id}: {what}",
                check=self.check_owner,
                maximum=self.settings.retry_max_s,
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

    def set_pending(self, reason: str | None) -> None:
        """Record and publish that the search waits for Ray resources (``reason``), or (None) that
        its actors started and it runs again (`workers.placement.wait_placed` calls it)."""
        self.write(
            "pending" if reason else "running again",
            lambda: self.store.set_pending(
                search_id=self.search_id, reason=reason, fencing_token=self.fencing_token
            ),
        )
        status = "pending" if reason else "running"
        self.publish({"type": "status", "status": status, "pending_reason": reason})


def claim_search(
    store: Store,
    queue: Queue,
    settings: Settings,
    search_id: int,
    *,
    worker_id: str | None = None,
    stop_event: threading.Event | None = None,
    keeper: LeaseKeeper | None = None,
) -> SearchClaim:
    """Mark the search running (a new fencing token; retried while the database is down) and
    return the claim. Its queue also writes TensorBoard files when the spec asks for them.

    Raises:
        Conflict: the search is finished already.
        SearchInterrupted: ``stop_event`` was set while the database was down.
    """
    stop = stop_event or threading.Event()

    def stopping() -> None:
        if stop.is_set():
            raise SearchInterrupted(f"search {search_id}: worker stopping")

    record = retry_transient(
        lambda: store.mark_running(search_id=search_id, worker_id=worker_id),
        what=f"search {search_id}: claim",
        check=stopping,
        maximum=settings.retry_max_s,
        sleep=stop.wait,
    )
    queue = tensorboard.follow(queue, record.spec, settings=settings, store=store, search_id=search_id)
    return SearchClaim(record, store, queue, settings, stop, keeper)


@dataclass
class SearchRun:
    """A claimed search with its plan: what the phases of `workers.runner` share."""

    claim: SearchClaim
    plan: SearchPlan
    space: Space = field(init=False)
    genotypes: dict[tuple[int, ...], tuple[dict[str, Any], str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.space = self.plan.space()

    def genotype(self, tokens: Sequence[int]) -> tuple[dict[str, Any], str]:
        """``(genotype dict, hash)`` of ``tokens``, memoised for the run."""
        key = tuple(tokens)
        if key not in self.genotypes:
            g = Genotype.of(self.space, key)
            self.genotypes[key] = (g.to_dict(), g.hash())
        return self.genotypes[key]
