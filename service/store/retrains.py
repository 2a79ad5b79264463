"""The results part of the SQL store: derived architectures and retraining runs, written after the
search loop (the contract is on `service.store.base.BaseStore`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound
from service.store.models import TERMINAL_STATUSES, Architecture, Derived, Retrain, Search, utcnow
from service.store.part import StorePart, insert_ignoring_duplicates, search_row
from service.store.records import ArchitectureRecord, DerivedRecord, RetrainRecord
from service.store.rows import ARCH_SLOT, architecture_rows, clean_json, finite, retrain_status


class RetrainsPart(StorePart):
    """The rows of ``derived`` and ``retrains``."""

    def record_derived(
        self, *, search_id: int, items: list[dict[str, Any]], epoch: int | None = None
    ) -> list[DerivedRecord]:
        with self._db.session(write=True) as session:
            search = search_row(session, search_id, lock=True)
            at_epoch = (search.epoch or 0) if epoch is None else epoch
            given = [
                {**item, "phase": "derive", "index": i, "reward": item.get("score")}
                for i, item in enumerate(items)
            ]
            rows = architecture_rows(search_id, at_epoch, given, phases=("derive",))
            if rows:
                session.execute(insert_ignoring_duplicates(session, Architecture, ARCH_SLOT), rows)
            ids = dict(
                session.execute(
                    select(Architecture.index, Architecture.id).where(
                        Architecture.search_id == search_id,
                        Architecture.epoch == at_epoch,
                        Architecture.phase == "derive",
                    )
                ).all()
            )
            derived = [
                {
                    "search_id": search_id,
                    "rank": row["index"] + 1,
                    "architecture_id": ids[row["index"]],
                    "score": row["reward"],
                }
                for row in rows
            ]
            if derived:
                session.execute(insert_ignoring_duplicates(session, Derived, ["search_id", "rank"]), derived)
        return self.list_derived(search_id=search_id)

    def list_derived(self, *, search_id: int) -> list[DerivedRecord]:
        with self._db.session() as session:
            search_row(session, search_id)
            rows = session.execute(
                select(Derived, Architecture)
                .join(Architecture, Architecture.id == Derived.architecture_id)
                .where(Derived.search_id == search_id)
                .order_by(Derived.rank)
            ).all()
            return [
                DerivedRecord(
                    search_id=d.search_id,
                    rank=d.rank,
                    architecture_id=d.architecture_id,
                    score=d.score,
                    architecture=ArchitectureRecord.from_row(a),
                )
                for d, a in rows
            ]

    def create_retrain(
        self, *, search_id: int, architecture_id: int, status: str = "queued"
    ) -> RetrainRecord:
        retrain_status(status, allowed=("queued", "running"))
        with self._db.session(write=True) as session:
            search_row(session, search_id, lock=True)
            arch = session.get(Architecture, architecture_id)
            if arch is None or arch.search_id != search_id:
                raise NotFound(
                    f"architecture {architecture_id} not found in search {search_id}", field="architecture_id"
                )
            existing = session.scalars(
                select(Retrain)
                .where(Retrain.search_id == search_id, Retrain.architecture_id == architecture_id)
                .where(Retrain.status.in_(("queued", "running", "succeeded")))
                .order_by(Retrain.id)
            ).first()
            if existing is not None:
                return RetrainRecord.from_row(existing)
            row = Retrain(
                search_id=search_id, architecture_id=architecture_id, status=status, created_at=utcnow()
            )
            session.add(row)
            session.flush()
            return RetrainRecord.from_row(row)

    @staticmethod
    def _retrain_row(session: Session, retrain_id: int) -> Retrain:
        row = session.get(Retrain, retrain_id, with_for_update=True)
        if row is None:
            raise NotFound(f"retrain {retrain_id} not found", field="retrain_id")
        return row

    def update_retrain(
        self,
        *,
        retrain_id: int,
        status: str | None = None,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RetrainRecord:
        if status is not None:
            retrain_status(status, allowed=("queued", "running"))
        with self._db.session(write=True) as session:
            row = self._retrain_row(session, retrain_id)
            if row.status not in ("queued", "running"):
                raise Conflict(f"retrain {retrain_id} is already {row.status}")
            row.status = status or row.status
            if metrics is not None:
                row.metrics = clean_json(dict(metrics))
            if error is not None:
                row.error = error
            session.flush()
            return RetrainRecord.from_row(row)

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
        retrain_status(status, allowed=("succeeded", "failed", "cancelled"))
        with self._db.session(write=True) as session:
            row = self._retrain_row(session, retrain_id)
            if row.status == status:
                return RetrainRecord.from_row(row)
            if row.status not in ("queued", "running"):
                raise Conflict(f"retrain {retrain_id} is already {row.status}")
            row.status, row.finished_at, row.error = status, utcnow(), error
            row.params = params if params is not None else row.params
            row.flops = flops if flops is not None else row.flops
            row.metrics = clean_json(dict(metrics)) if metrics is not None else row.metrics
            row.test_score = finite(test_score) if test_score is not None else row.test_score
            row.artifact_uri = artifact_uri or row.artifact_uri
            session.flush()
            return RetrainRecord.from_row(row)

    def get_retrain(self, *, retrain_id: int) -> RetrainRecord:
        with self._db.session() as session:
            row = session.get(Retrain, retrain_id)
            if row is None:
                raise NotFound(f"retrain {retrain_id} not found", field="retrain_id")
            return RetrainRecord.from_row(row)

    def list_retrains(self, *, search_id: int) -> list[RetrainRecord]:
        with self._db.session() as session:
            search_row(session, search_id)
            rows = session.scalars(select(Retrain).where(Retrain.search_id == search_id).order_by(Retrain.id))
            return [RetrainRecord.from_row(r) for r in rows]

    def orphan_retrains(self) -> list[RetrainRecord]:
        query = (
            select(Retrain)
            .join(Search, Search.id == Retrain.search_id)
            .where(Retrain.status.in_(("queued", "running")), Search.status.in_(TERMINAL_STATUSES))
            .order_by(Retrain.id)
        )
        with self._db.session() as session:
            return [RetrainRecord.from_row(r) for r in session.scalars(query)]
