"""The connection under every part of the store: engine, one transaction per call, error
translation, and the row lookups the parts share. Not a public interface; use ``service.store``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from service.errors import Conflict, EnasError, NotFound, Unavailable
from service.store import models
from service.store.base import BaseStore
from service.store.db import WRITE_OPTION, is_unreachable, make_engine, make_session_factory, ping
from service.store.models import Search


def translate(error: SQLAlchemyError) -> EnasError:
    """The project error for a SQLAlchemy error (raise it ``from`` the original)."""
    if is_unreachable(error):
        return Unavailable(f"database unavailable: {getattr(error, 'orig', None) or error}")
    if isinstance(error, IntegrityError):
        return Conflict(f"conflicts with stored data: {error.orig}")
    return EnasError(f"database error: {error.__class__.__name__}")


class Database:
    """An engine and its sessions: what every part of the store works through.

    Build from a database URL (owns its engine) or from an existing engine (does not).
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        if engine is not None and url is None:
            self.engine, self.owns_engine = engine, False
            self.url = engine.url.render_as_string(hide_password=False)
        elif url is not None and engine is None:
            self.engine, self.owns_engine, self.url = make_engine(url), True, url
        else:
            raise ValueError("give exactly one of url or engine")
        self._sessions = make_session_factory(self.engine)

    def dispose(self) -> None:
        """Close pooled connections (only of an engine this object created)."""
        if self.owns_engine:
            self.engine.dispose()

    def ping(self) -> None:
        """Raises :class:`Unavailable` when the database cannot be reached."""
        ping(self.engine)

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction; ``write`` takes SQLite's write lock at BEGIN (see ``service.store.db``).
        SQLAlchemy errors leave it translated (`translate`)."""
        try:
            with self._sessions.begin() as session:
                if write:
                    session.connection(execution_options={WRITE_OPTION: True})
                yield session
        except SQLAlchemyError as e:
            raise translate(e) from e


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
