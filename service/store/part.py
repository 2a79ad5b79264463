"""The base of the SQL store's parts (`service.store.sql.Store` is composed of them) and the row
helpers they share. Not a public interface; use ``service.store``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.errors import Conflict, NotFound, Unavailable
from service.store import models
from service.store.base import BaseStore
from service.store.db import Database
from service.store.models import Search


def insert_ignoring_duplicates(session: Session, model: type[models.Base], keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING for the session's dialect (executemany-ready)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=keys)
    raise Unavailable(f"unsupported database dialect {dialect!r}")


def search_row(session: Session, search_id: int, *, lock: bool = False) -> Search:
    """The search's row (``lock``: SELECT ... FOR UPDATE). Raises NotFound."""
    query = select(Search).where(Search.id == search_id)
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"search {search_id} not found", field="search_id")
    return row


def check_fence(row: Search, fencing_token: int | None) -> None:
    """Raise Conflict when ``fencing_token`` is given and is not the search's current one."""
    if fencing_token is not None and fencing_token != row.fencing_token:
        raise Conflict(
            f"search {row.id} is leased with fencing token {row.fencing_token}, not {fencing_token}"
        )


class StorePart(BaseStore):
    """A part of the SQL store (`service.store.sql.Store` is composed of them): the methods of one
    concern, written against the `Database` the store gives every part."""

    _db: Database
