"""The one store: every read and write of the service's tables goes through :class:`Store`.

Contract (the same on SQLite and PostgreSQL, pinned by ``tests/service/test_store.py``):
- every method takes keyword arguments and returns frozen snapshots (``service.records``);
- unknown ids raise :class:`NotFound`, wrong states :class:`Conflict`, bad arguments
  :class:`InvalidInput`, an unreachable or locked database :class:`Unavailable`; SQLAlchemy errors
  never escape (they are re-raised as these, ``from`` the original);
- one method call is one transaction;
- non-finite floats (NaN, inf) are stored as null (JSON cannot carry them).
A ``Store`` pickles as its URL only; unpickling reconnects. Prefer building one per process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service import models
from service.errors import Conflict, InvalidInput, NotFound
from service.models import Architecture, Epoch, Search, utcnow
from service.records import (
    ArchitectureRecord,
    DerivedRecord,
    EpochRecord,
    RetrainRecord,
    SearchRecord,
    as_utc,
)
from service.store_core import (
    architecture_values,
    check_limit,
    clean_json,
    decode_cursor,
    encode_cursor,
    finite,
    insert_architectures,
)
from service.store_results import ResultsStore

__all__ = [
    "ArchitectureRecord",
    "DerivedRecord",
    "EpochRecord",
    "RetrainRecord",
    "SearchRecord",
    "Store",
]


class Store(ResultsStore):
    """Persistence of searches, their sampled architectures, epochs, derivations and retrains.

    Build one per process: ``Store(url)`` or ``Store(engine=...)``. Derivation and retrain methods
    come from :class:`service.store_results.ResultsStore`.
    """

    # -- searches ---------------------------------------------------------------------------

    def create_search(self, *, spec: dict[str, Any], owner: str = "anonymous") -> SearchRecord:
        """Insert a queued search for a resolved spec (needs ``spec["epochs"] >= 1``)."""
        epochs = spec.get("epochs") if isinstance(spec, dict) else None
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise InvalidInput("the resolved spec needs an integer epochs >= 1", field="epochs")
        row = Search(
            owner=owner,
            status="queued",
            spec=clean_json(spec),
            seed=int(spec.get("seed", 0)),
            created_at=utcnow(),
            progress=0.0,
            epoch=None,
            total_epochs=epochs,
            fencing_token=0,
            cancel_requested=False,
        )
        with self._session(write=True) as session:
            session.add(row)
            session.flush()
            return SearchRecord.from_row(row)

    def get_search(self, *, search_id: int) -> SearchRecord:
        """One search. Raises NotFound."""
        with self._session() as session:
            return SearchRecord.from_row(self._search_row(session, search_id))

    def list_searches(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[SearchRecord], str | None]:
        """Searches newest first; returns ``(page, next_cursor)``, ``next_cursor`` None on the last page."""
        check_limit(limit, 500)
        query = select(Search).order_by(Search.id.desc()).limit(limit + 1)
        if status is not None:
            if status not in models.SEARCH_STATUSES:
                raise InvalidInput(
                    f"status must be one of {', '.join(models.SEARCH_STATUSES)}", field="status"
                )
            query = query.where(Search.status == status)
        if cursor is not None:
            (last_id,) = decode_cursor(cursor, 1)
            query = query.where(Search.id < int(last_id))
        with self._session() as session:
            rows = list(session.scalars(query))
        page = [SearchRecord.from_row(r) for r in rows[:limit]]
        return page, (encode_cursor([page[-1].id]) if len(rows) > limit else None)

    def mark_running(self, *, search_id: int, worker_id: str | None = None) -> SearchRecord:
        """Claim a queued (or re-claim a running) search for ``worker_id``.

        Sets status ``running``, ``started_at`` on the first start, ``lease_owner`` and a new
        ``fencing_token`` (one more than before; pass it to later writes to fence out a stale worker).
        Raises Conflict when the search is already finished (e.g. cancelled while queued).
        """
        with self._session(write=True) as session:
            row = self._search_row(session, search_id, lock=True)
            if row.status in models.TERMINAL_STATUSES:
                raise Conflict(f"search {search_id} is already {row.status}")
            row.status = "running"
            row.started_at = row.started_at or utcnow()
            row.lease_owner = worker_id
            row.fencing_token += 1
            session.flush()
            return SearchRecord.from_row(row)

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
        """
        if status not in models.TERMINAL_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(models.TERMINAL_STATUSES)}", field="status")
        with self._session(write=True) as session:
            row = self._search_row(session, search_id, lock=True)
            if row.status in models.TERMINAL_STATUSES:
                if row.status == status:
                    return SearchRecord.from_row(row)
                raise Conflict(f"search {search_id} is already {row.status}")
            self._check_fence(row, fencing_token)
            row.status, row.finished_at, row.lease_owner = status, utcnow(), None
            row.error, row.error_traceback = error, traceback
            if status == "succeeded":
                row.progress = 1.0
            session.flush()
            return SearchRecord.from_row(row)

    def request_cancel(self, *, search_id: int) -> SearchRecord:
        """Cancel: a queued search becomes ``cancelled`` now; a running one gets ``cancel_requested``
        (its worker stops at the next batch boundary). Idempotent; a succeeded/failed search: Conflict."""
        with self._session(write=True) as session:
            row = self._search_row(session, search_id, lock=True)
            if row.status in ("succeeded", "failed"):
                raise Conflict(f"search {search_id} already {row.status}; nothing to cancel")
            if row.status == "queued":
                row.status, row.finished_at = "cancelled", utcnow()
            elif row.status == "running":
                row.cancel_requested = True
            session.flush()
            return SearchRecord.from_row(row)

    def requeue_search(self, *, search_id: int) -> SearchRecord:
        """Put a failed or cancelled search back to ``queued`` (to resume from its checkpoint).

        Clears the error, the finish time and the cancel flag; keeps epochs, architectures and the
        checkpoint. Other states: Conflict. The caller pushes the id on the queue.
        """
        with self._session(write=True) as session:
            row = self._search_row(session, search_id, lock=True)
            if row.status not in ("failed", "cancelled"):
                raise Conflict(f"search {search_id} is {row.status}; only failed or cancelled ones resume")
            row.status, row.finished_at, row.lease_owner, row.cancel_requested = "queued", None, None, False
            row.error = row.error_traceback = None
            session.flush()
            return SearchRecord.from_row(row)

    def unfinished_searches(self) -> list[SearchRecord]:
        """Every ``queued`` or ``running`` search, oldest first (the reconciler's view of the truth)."""
        query = select(Search).where(Search.status.in_(("queued", "running"))).order_by(Search.id)
        with self._session() as session:
            return [SearchRecord.from_row(r) for r in session.scalars(query)]

    def counts_by_status(self) -> dict[str, int]:
        """Number of searches in each status (every status present, zeros included)."""
        with self._session() as session:
            rows = session.execute(select(Search.status, func.count()).group_by(Search.status)).all()
        counts = dict.fromkeys(models.SEARCH_STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    # -- epochs and architectures ------------------------------------------------------------

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
        if not isinstance(architectures, list):
            raise InvalidInput("architectures must be a list", field="architectures")
        values = architecture_values(search_id, epoch, architectures, phases=("train", "sample"))  # lazy
        with self._session(write=True) as session:
            search = self._search_row(session, search_id, lock=True)
            if search.status in models.TERMINAL_STATUSES:
                raise Conflict(f"search {search_id} is already {search.status}")
            self._check_fence(search, fencing_token)
            if not isinstance(epoch, int) or not 0 <= epoch < search.total_epochs:
                raise InvalidInput(f"epoch must be between 0 and {search.total_epochs - 1}", field="epoch")
            recorded = session.scalar(
                select(Epoch.id).where(Epoch.search_id == search_id, Epoch.epoch == epoch)
            )
            if recorded is None:  # a replayed epoch (after a restart) writes nothing twice
                insert_architectures(session, values)  # bulk: executemany / COPY (bench/service.py)
            finished_at = utcnow()
            if duration_s is None and started_at is not None:
                duration_s = (finished_at - as_utc(started_at)).total_seconds()  # type: ignore[operator]
            session.execute(
                self._insert_ignoring_duplicates(session, Epoch, ["search_id", "epoch"]),
                [
                    {
                        "search_id": search_id,
                        "epoch": epoch,
                        "metrics": clean_json(dict(metrics)),
                        "started_at": started_at,
                        "finished_at": finished_at,
                        "duration_s": finite(duration_s),
                    }
                ],
            )
            self._update_best(session, search, epoch)
            if search.epoch is None or epoch >= search.epoch:
                search.epoch = epoch
                search.checkpoint_uri = checkpoint_uri or search.checkpoint_uri
            search.progress = min(1.0, (search.epoch + 1) / search.total_epochs)
            session.flush()
            return SearchRecord.from_row(search)

    @staticmethod
    def _update_best(session: Session, search: Search, epoch: int) -> None:
        best = session.execute(
            select(Architecture.id, Architecture.reward)
            .where(Architecture.search_id == search.id, Architecture.epoch == epoch)
            .where(Architecture.phase != "derive", Architecture.reward.is_not(None))
            .order_by(Architecture.reward.desc(), Architecture.id)
            .limit(1)
        ).first()
        if best is not None and (search.best_reward is None or best.reward > search.best_reward):
            search.best_reward, search.best_architecture_id = best.reward, best.id

    def list_epochs(self, *, search_id: int) -> list[EpochRecord]:
        """Every recorded epoch of a search, in order. Raises NotFound."""
        with self._session() as session:
            self._search_row(session, search_id)
            rows = session.scalars(select(Epoch).where(Epoch.search_id == search_id).order_by(Epoch.epoch))
            return [EpochRecord.from_row(r) for r in rows]

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
        check_limit(limit, 1000)
        if order not in ("index", "reward"):
            raise InvalidInput("order must be 'index' or 'reward'", field="order")
        if phase is not None and phase not in models.PHASES:
            raise InvalidInput(f"phase must be one of {', '.join(models.PHASES)}", field="phase")
        query = select(Architecture).where(Architecture.search_id == search_id).limit(limit + 1)
        if epoch is not None:
            query = query.where(Architecture.epoch == epoch)
        if phase is not None:
            query = query.where(Architecture.phase == phase)
        if order == "index":
            query = query.order_by(Architecture.id)
            if cursor is not None:
                query = query.where(Architecture.id > int(decode_cursor(cursor, 1)[0]))
        else:
            query = query.order_by(Architecture.reward.desc().nulls_last(), Architecture.id)
            if cursor is not None:
                query = query.where(self._after_reward(*decode_cursor(cursor, 2)))
        with self._session() as session:
            self._search_row(session, search_id)
            rows = list(session.scalars(query))
        page = [ArchitectureRecord.from_row(r) for r in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        last = page[-1]
        return page, encode_cursor([last.id] if order == "index" else [last.reward, last.id])

    @staticmethod
    def _after_reward(reward: float | None, last_id: int) -> Any:
        if reward is None:
            return (Architecture.reward.is_(None)) & (Architecture.id > int(last_id))
        return or_(
            Architecture.reward < float(reward),
            (Architecture.reward == float(reward)) & (Architecture.id > int(last_id)),
            Architecture.reward.is_(None),
        )

    def get_architecture(self, *, architecture_id: int) -> ArchitectureRecord:
        """One architecture. Raises NotFound."""
        with self._session() as session:
            row = session.get(Architecture, architecture_id)
            if row is None:
                raise NotFound(f"architecture {architecture_id} not found", field="architecture_id")
            return ArchitectureRecord.from_row(row)
