"""The store's contract, written once: :class:`BaseStore`, whose docstrings are the contract.

Every backend (today one: `service.store.sql.Store`, on SQLite or PostgreSQL) implements it, and
``tests/service/test_store.py`` runs the same contract tests against each database. The contract:

- every method takes keyword arguments and returns frozen snapshots (``service.store.records``),
  never live ORM objects;
- unknown ids raise :class:`NotFound`, wrong states :class:`Conflict`, bad arguments
  :class:`InvalidInput`, an unreachable or locked database :class:`Unavailable`; driver errors
  never escape (they are re-raised as these, ``from`` the original);
- one method call is one transaction;
- non-finite floats (NaN, inf) are stored as null (JSON cannot carry them).
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from service.store.records import ArchitectureRecord, DerivedRecord, EpochRecord, RetrainRecord, SearchRecord


class BaseStore(abc.ABC):
    """Persistence of searches, their sampled architectures, epochs, derivations and retrains."""

    # -- the connection ------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The database URL this store was built from (a store pickles as this URL only)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raises :class:`Unavailable` when the database cannot be reached."""

    @abc.abstractmethod
    def dispose(self) -> None:
        """Close pooled connections (only those this store opened)."""

    # -- searches --------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_search(self, *, spec: dict[str, Any], owner: str = "anonymous") -> SearchRecord:
        """Insert a queued search for a resolved spec (needs ``spec["epochs"] >= 1``, else InvalidInput)."""

    @abc.abstractmethod
    def get_search(self, *, search_id: int) -> SearchRecord:
        """One search. Raises NotFound."""

    @abc.abstractmethod
    def list_searches(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[SearchRecord], str | None]:
        """Searches newest first (only ``owner``'s when given); returns ``(page, next_cursor)``,
        ``next_cursor`` None on the last page.
        Raises InvalidInput (status, limit outside 1..500, a cursor this store did not hand out)."""

    @abc.abstractmethod
    def mark_running(self, *, search_id: int, worker_id: str | None = None) -> SearchRecord:
        """Claim a queued (or re-claim a running) search for ``worker_id``.

        Sets status ``running``, ``started_at`` on the first start, ``lease_owner`` and a new
        ``fencing_token`` (one more than before; pass it to later writes to fence out a stale worker).
        Raises Conflict when the search is already finished (e.g. cancelled while queued).
        """

    @abc.abstractmethod
    def finish_search(
        self,
        *,
        search_id: int,
        status: str,
        error: str | None = None,
        traceback: str | None = None,
        fencing_token: int | None = None,
    ) -> SearchRecord:
        """Move a search to ``succeeded``, ``failed`` or ``cancelled``.

        Finishing again with the same status returns the record unchanged; with another: Conflict.
        A ``fencing_token`` that is not the search's current one: Conflict.
        """

    @abc.abstractmethod
    def request_cancel(self, *, search_id: int) -> SearchRecord:
        """Cancel: a queued search becomes ``cancelled`` now; a running one gets ``cancel_requested``
        (its worker stops at the next batch boundary). Idempotent; a succeeded/failed search: Conflict."""

    @abc.abstractmethod
    def requeue_search(self, *, search_id: int) -> SearchRecord:
        """Put a failed or cancelled search back to ``queued`` (to resume from its checkpoint).

        Clears the error, the finish time and the cancel flag; keeps epochs, architectures and the
        checkpoint. Other states: Conflict. The caller pushes the id on the queue.
        """

    @abc.abstractmethod
    def set_pending(
        self, *, search_id: int, reason: str | None, fencing_token: int | None = None
    ) -> SearchRecord:
        """A claimed search waits for busy Ray resources (status ``pending``, ``pending_reason`` set)
        or, with ``reason=None``, got them (back to ``running``, reason cleared).

        Raises Conflict when the search is not running/pending or the fencing token is stale."""

    @abc.abstractmethod
    def unfinished_searches(self) -> list[SearchRecord]:
        """Every ``queued``, ``running`` or ``pending`` search, oldest first (the reconciler's view of
        the truth)."""

    @abc.abstractmethod
    def counts_by_status(self, *, owner: str | None = None) -> dict[str, int]:
        """Number of searches (only ``owner``'s when given) in each status (every status present,
        zeros included)."""

    @abc.abstractmethod
    def owner_usage(self, *, owner: str, since: datetime) -> tuple[int, list[tuple[datetime, float]]]:
        """What ``owner`` uses (the quotas of ``service.quotas``): the number of its ``queued``,
        ``running`` or ``pending`` searches, and ``(created_at, estimated cost)`` of each search it
        submitted at or after ``since``, oldest first (cost: ``spec.cost.macs``, 0 where none)."""

    # -- epochs and architectures ----------------------------------------------------------------

    @abc.abstractmethod
    def record_epoch(
        self,
        *,
        search_id: int,
        epoch: int,
        metrics: dict[str, Any],
        architectures: list[dict[str, Any]],
        checkpoint_uri: str | None = None,
        started_at: datetime | None = None,
        duration_s: float | None = None,
        fencing_token: int | None = None,
    ) -> SearchRecord:
        """Write one finished epoch in ONE transaction and return the updated search.

        ``epoch`` counts from 0 to ``total_epochs - 1``. Inserts the architectures (dicts with ``phase``
        ('train' or 'sample'), ``index``, ``tokens``, ``hash`` and optional ``genotype``, ``reward``,
        ``loss``, ``accuracy``, ``entropy``, ``log_prob``) and the epoch's metrics, unless the epoch is
        recorded already: a replay (after a restart) leaves the stored rows as they are.
        Updates ``epoch`` (last finished), ``progress`` ((epoch + 1) / total), ``best_reward`` and
        ``best_architecture_id`` (best reward so far, train/sample phases), ``checkpoint_uri``.
        The returned record's ``cancel_requested`` tells the worker to stop.
        Raises NotFound, InvalidInput (bad epoch or rows), Conflict (finished search, stale fence).
        """

    @abc.abstractmethod
    def list_epochs(self, *, search_id: int) -> list[EpochRecord]:
        """Every recorded epoch of a search, in order. Raises NotFound."""

    @abc.abstractmethod
    def list_architectures(
        self,
        *,
        search_id: int,
        epoch: int | None = None,
        phase: str | None = None,
        order: str = "index",
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ArchitectureRecord], str | None]:
        """A page of a search's architectures and the cursor of the next page (None at the end).

        ``order="index"``: insertion order (epoch, phase, index). ``order="reward"``: best reward
        first, architectures without a reward last. Raises NotFound, InvalidInput.
        """

    @abc.abstractmethod
    def get_architecture(self, *, architecture_id: int) -> ArchitectureRecord:
        """One architecture. Raises NotFound."""

    # -- derivation and retraining ---------------------------------------------------------------

    @abc.abstractmethod
    def record_derived(
        self, *, search_id: int, items: list[dict[str, Any]], epoch: int | None = None
    ) -> list[DerivedRecord]:
        """Store the derived architectures, best first: ``items`` are dicts with ``tokens``, ``hash``,
        ``genotype`` and ``score`` (validation score on the shared weights). Each becomes an
        architecture (phase 'derive', ``epoch`` default the search's last epoch, index = rank - 1,
        reward = score) and a ``derived`` row of rank 1, 2, ... Idempotent: ranks already stored are
        kept. Returns the search's derived list."""

    @abc.abstractmethod
    def list_derived(self, *, search_id: int) -> list[DerivedRecord]:
        """The derived architectures by rank, each with its architecture. Raises NotFound."""

    @abc.abstractmethod
    def create_retrain(
        self, *, search_id: int, architecture_id: int, status: str = "queued"
    ) -> RetrainRecord:
        """A retraining run of one of the search's architectures.

        Returns the existing run instead when one for the same architecture is queued, running or
        succeeded (so a resumed search does not retrain twice). Raises NotFound.
        """

    @abc.abstractmethod
    def update_retrain(
        self,
        *,
        retrain_id: int,
        status: str | None = None,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RetrainRecord:
        """Progress of a retrain: set ``status`` ('queued'/'running'), replace its ``metrics`` (the
        curves and attempts so far) and/or set ``error`` (a failed attempt that will be retried).
        Raises NotFound, Conflict when it already finished."""

    @abc.abstractmethod
    def finish_retrain(
        self,
        *,
        retrain_id: int,
        status: str,
        params: int | None = None,
        flops: int | None = None,
        metrics: dict[str, Any] | None = None,
        test_score: float | None = None,
        artifact_uri: str | None = None,
        error: str | None = None,
    ) -> RetrainRecord:
        """Record the outcome of a retrain ('succeeded', 'failed' or 'cancelled'); fields left None keep
        their stored value. Idempotent: finishing again with the same status returns the stored row
        unchanged (a retried task); with another status: Conflict. Raises NotFound."""

    @abc.abstractmethod
    def get_retrain(self, *, retrain_id: int) -> RetrainRecord:
        """One retrain. Raises NotFound."""

    @abc.abstractmethod
    def list_retrains(self, *, search_id: int) -> list[RetrainRecord]:
        """Every retrain of a search, oldest first. Raises NotFound."""

    @abc.abstractmethod
    def orphan_retrains(self) -> list[RetrainRecord]:
        """``queued``/``running`` retrains of FINISHED searches, oldest first: the ones only a retrain
        job (``POST /searches/{id}/retrain``) runs (a running search retrains its own rows)."""
