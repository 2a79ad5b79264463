"""Engines, sessions and migrations, and `Database`: an engine with one transaction per call whose
SQLAlchemy errors come out as the project's errors (`translate`).

SQLite (the embedded default) gets WAL, foreign keys and a busy timeout on every connection, and
real transactions: SQLAlchemy emits ``BEGIN`` itself, ``BEGIN IMMEDIATE`` on connections marked
with :data:`WRITE_OPTION`, so a read-then-write transaction takes the write lock up front instead of
failing on a stale snapshot when another process (a worker) wrote in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, EnasError, Unavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
WRITE_OPTION = "enas_write"  # connection execution option: this transaction will write
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x454E4153  # "ENAS": one migrating process at a time


def normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver named for PostgreSQL (``postgresql://`` works too)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (SQLite or PostgreSQL) with the project's connection settings.

    A SQLite file's parent folder is created. Nothing connects until the engine is first used.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"check_same_thread": False, **kwargs.pop("connect_args", {})}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Driver in autocommit; SQLAlchemy's "begin" event below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # the busy timeout first: switching a new file to WAL waits for a migrating writer's lock
        # (with the driver's 5 s default, a slow migration under load made the others fail)
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose loaded objects stay readable after commit (the store copies them out)."""
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    """Run ``SELECT 1``. Raises :class:`Unavailable` when the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise Unavailable(f"database unreachable: {type(e).__name__}", field=None) from e


def is_unreachable(error: SQLAlchemyError) -> bool:
    """True when ``error`` means the database cannot be reached or is locked, not a bad statement."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


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
        """One transaction; ``write`` takes SQLite's write lock at BEGIN (see `make_engine`).
        SQLAlchemy errors leave it translated (`translate`)."""
        try:
            with self._sessions.begin() as session:
                if write:
                    session.connection(execution_options={WRITE_OPTION: True})
                yield session
        except SQLAlchemyError as e:
            raise translate(e) from e


def alembic_config(url: str | None = None) -> Any:
    """The Alembic configuration of ``service/store/migrations`` (for programmatic commands)."""
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or behind an engine) to ``revision``; safe to run concurrently.

    The whole upgrade is one transaction holding the write lock (SQLite ``BEGIN IMMEDIATE``,
    a PostgreSQL advisory lock), so of two processes starting together one migrates and the other
    then finds the schema current. Raises :class:`Unavailable` when the database cannot be reached.
    """
    from alembic import command

    engine = url if isinstance(url, Engine) else make_engine(url)
    config = alembic_config()
    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    except DBAPIError as e:
        if is_unreachable(e):
            raise Unavailable(f"database unreachable during migration: {e.orig!r}") from e
        raise
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
