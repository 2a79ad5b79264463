"""The searches part of the SQL store: create, list, claim, finish, cancel and requeue searches
(the contract is on `service.store.base.BaseStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from service.errors import Conflict, InvalidInput
from service.store import models
from service.store.models import Search, utcnow
from service.store.part import StorePart, check_fence, search_row
from service.store.records import SearchRecord, as_utc
from service.store.rows import check_limit, clean_json, decode_cursor, encode_cursor


class SearchesPart(StorePart):
    """The rows of ``searches``: a search's life from queued to finished."""

    def create_search(self, *, spec: dict[str, Any], owner: str = "anonymous") -> SearchRecord:
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
        with self._db.session(write=True) as session:
            session.add(row)
            session.flush()
            return SearchRecord.from_row(row)

    def get_search(self, *, search_id: int) -> SearchRecord:
        with self._db.session() as session:
            return SearchRecord.from_row(search_row(session, search_id))

    def list_searches(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[SearchRecord], str | None]:
        check_limit(limit, 500)
        query = select(Search).order_by(Search.id.desc()).limit(limit + 1)
        if owner is not None:
            query = query.where(Search.owner == owner)
        if status is not None:
            if status not in models.SEARCH_STATUSES:
                raise InvalidInput(
                    f"status must be one of {', '.join(models.SEARCH_STATUSES)}", field="status"
                )
            query = query.where(Search.status == status)
        if cursor is not None:
            (last_id,) = decode_cursor(cursor, 1)
            query = query.where(Search.id < int(last_id))
        with self._db.session() as session:
            rows = list(session.scalars(query))
        page = [SearchRecord.from_row(r) for r in rows[:limit]]
        return page, (encode_cursor([page[-1].id]) if len(rows) > limit else None)

    def mark_running(self, *, search_id: int, worker_id: str | None = None) -> SearchRecord:
        with self._db.session(write=True) as session:
            row = search_row(session, search_id, lock=True)
            if row.status in models.TERMINAL_STATUSES:
                raise Conflict(f"search {search_id} is already {row.status}")
            row.status, row.pending_reason = "running", None
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
        if status not in models.TERMINAL_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(models.TERMINAL_STATUSES)}", field="status")
        with self._db.session(write=True) as session:
            row = search_row(session, search_id, lock=True)
            if row.status in models.TERMINAL_STATUSES:
                if row.status == status:
                    return SearchRecord.from_row(row)
                raise Conflict(f"search {search_id} is already {row.status}")
            check_fence(row, fencing_token)
            row.status, row.finished_at, row.lease_owner = status, utcnow(), None
            row.pending_reason = None
            row.error, row.error_traceback = error, traceback
            if status == "succeeded":
                row.progress = 1.0
            session.flush()
            return SearchRecord.from_row(row)

    def request_cancel(self, *, search_id: int) -> SearchRecord:
        with self._db.session(write=True) as session:
            row = search_row(session, search_id, lock=True)
            if row.status in ("succeeded", "failed"):
                raise Conflict(f"search {search_id} already {row.status}; nothing to cancel")
            if row.status == "queued":
                row.status, row.finished_at = "cancelled", utcnow()
            elif row.status in models.ACTIVE_STATUSES:
                row.cancel_requested = True
            session.flush()
            return SearchRecord.from_row(row)

    def requeue_search(self, *, search_id: int) -> SearchRecord:
        with self._db.session(write=True) as session:
            row = search_row(session, search_id, lock=True)
            if row.status not in ("failed", "cancelled"):
                raise Conflict(f"search {search_id} is {row.status}; only failed or cancelled ones resume")
            row.status, row.finished_at, row.lease_owner, row.cancel_requested = "queued", None, None, False
            row.error = row.error_traceback = None
            session.flush()
            return SearchRecord.from_row(row)

    def set_pending(
        self, *, search_id: int, reason: str | None, fencing_token: int | None = None
    ) -> SearchRecord:
        with self._db.session(write=True) as session:
            row = search_row(session, search_id, lock=True)
            if row.status not in models.ACTIVE_STATUSES:
                raise Conflict(f"search {search_id} is {row.status}; only a running search waits")
            check_fence(row, fencing_token)
            row.status = "running" if reason is None else "pending"
            row.pending_reason = reason
            session.flush()
            return SearchRecord.from_row(row)

    def unfinished_searches(self) -> list[SearchRecord]:
        query = (
            select(Search).where(Search.status.in_(("queued", *models.ACTIVE_STATUSES))).order_by(Search.id)
        )
        with self._db.session() as session:
            return [SearchRecord.from_row(r) for r in session.scalars(query)]

    def counts_by_status(self, *, owner: str | None = None) -> dict[str, int]:
        query = select(Search.status, func.count()).group_by(Search.status)
        if owner is not None:
            query = query.where(Search.owner == owner)
        with self._db.session() as session:
            rows = session.execute(query).all()
        counts = dict.fromkeys(models.SEARCH_STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def owner_usage(self, *, owner: str, since: datetime) -> tuple[int, list[tuple[datetime, float]]]:
        unfinished = ("queued", *models.ACTIVE_STATUSES)
        active = select(func.count()).where(Search.owner == owner, Search.status.in_(unfinished))
        recent = (
            select(Search.created_at, Search.spec)
            .where(Search.owner == owner, Search.created_at >= since)
            .order_by(Search.created_at)
        )
        with self._db.session() as session:
            count = int(session.execute(active).scalar_one())
            rows = session.execute(recent).all()
        return count, [(as_utc(created), _cost_of(spec)) for created, spec in rows]


def _cost_of(spec: Any) -> float:
    cost = spec.get("cost") if isinstance(spec, dict) else None
    macs = cost.get("macs") if isinstance(cost, dict) else None
    return float(macs) if isinstance(macs, int | float) and not isinstance(macs, bool) else 0.0
