"""The epochs part of the SQL store: an epoch's rows written in one transaction, and the epochs and
sampled architectures read back (the contract is on `service.store.base.BaseStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.errors import Conflict, InvalidInput, NotFound
from service.store import models
from service.store.models import Architecture, Epoch, Search, utcnow
from service.store.part import StorePart, check_fence, insert_ignoring_duplicates, search_row
from service.store.records import ArchitectureRecord, EpochRecord, SearchRecord, as_utc
from service.store.rows import (
    architecture_values,
    check_limit,
    clean_json,
    decode_cursor,
    encode_cursor,
    finite,
    insert_architectures,
)


class EpochsPart(StorePart):
    """The rows of ``epochs`` and ``architectures`` written during a search."""

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
        if not isinstance(architectures, list):
            raise InvalidInput("architectures must be a list", field="architectures")
        values = architecture_values(search_id, epoch, architectures, phases=("train", "sample"))  # lazy
        with self._db.session(write=True) as session:
            search = search_row(session, search_id, lock=True)
            if search.status in models.TERMINAL_STATUSES:
                raise Conflict(f"search {search_id} is already {search.status}")
            check_fence(search, fencing_token)
            if not isinstance(epoch, int) or not 0 <= epoch < search.total_epochs:
                raise InvalidInput(f"epoch must be between 0 and {search.total_epochs - 1}", field="epoch")
            recorded = session.scalar(
                select(Epoch.id).where(Epoch.search_id == search_id, Epoch.epoch == epoch)
            )
            if recorded is None:  # a replayed epoch (after a restart) writes nothing twice
                insert_architectures(session, values)  # bulk: executemany / COPY (bench/service.py)
            finished_at = utcnow()
            if duration_s is None and started_at is not None:
                duration_s = (finished_at - as_utc(started_at)).total_seconds()
            session.execute(
                insert_ignoring_duplicates(session, Epoch, ["search_id", "epoch"]),
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
        with self._db.session() as session:
            search_row(session, search_id)
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
        with self._db.session() as session:
            search_row(session, search_id)
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
        with self._db.session() as session:
            row = session.get(Architecture, architecture_id)
            if row is None:
                raise NotFound(f"architecture {architecture_id} not found", field="architecture_id")
            return ArchitectureRecord.from_row(row)
