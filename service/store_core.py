"""The plumbing under :class:`service.store.Store`: connection, transactions, error translation,
row validation and cursors. Not a public interface; use ``service.store``."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from service import models
from service.db import WRITE_OPTION, is_unreachable, make_engine, make_session_factory, ping
from service.errors import Conflict, EnasError, InvalidInput, NotFound, Unavailable
from service.models import Search, utcnow

ARCH_SLOT = ["search_id", "epoch", "phase", "index"]
_ARCH_FLOATS = ("reward", "loss", "accuracy", "entropy", "log_prob")
_PLAIN_INT = frozenset({int})
# The architectures columns written by `insert_architectures`, in order.
ARCH_COLUMNS = (
    "search_id", "epoch", "phase", "index", "tokens", "genotype", "hash",
    "reward", "loss", "accuracy", "entropy", "log_prob", "created_at",
)  # fmt: skip


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def clean_json(value: Any) -> Any:
    """A copy of ``value`` that JSON (and PostgreSQL's JSONB) accepts: non-finite floats become None,
    tuples become lists, keys become strings. Anything else not JSON-typed: InvalidInput."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if hasattr(value, "item"):  # a numpy scalar, without importing numpy
        return clean_json(value.item())
    raise InvalidInput(f"value of type {type(value).__name__} cannot be stored as JSON")


def json_text(value: Any) -> str:
    """``value`` as the JSON text the JSON columns store (what ``json.dumps(clean_json(value))``
    gives; None -> ``"null"``, as SQLAlchemy's JSON type stores it).

    Plain JSON data is serialised in one pass at C speed; anything else (NaN, infinities, numpy
    scalars, non-JSON types) goes through `clean_json` first. One difference: dict keys True,
    False and None become "true", "false", "null" here, not "True", "False", "None".
    """
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(clean_json(value))


def _int_list(tokens: Any, where: str) -> list[int]:
    if isinstance(tokens, list | tuple) and set(map(type, tokens)) <= _PLAIN_INT:
        return list(tokens)  # the common case, checked at C speed
    if not isinstance(tokens, list | tuple) or not all(
        isinstance(t, int) and not isinstance(t, bool) or hasattr(t, "item") for t in tokens
    ):
        raise InvalidInput(f"{where}: tokens must be a list of integers", field="tokens")
    return [int(t) for t in tokens]


def architecture_rows(
    search_id: int,
    epoch: int,
    items: Sequence[dict[str, Any]],
    *,
    phases: Sequence[str],
    as_json_text: bool = False,
) -> list[dict[str, Any]]:
    """Validate architecture dicts and turn them into rows of the ``architectures`` table.

    ``as_json_text``: ``tokens`` and ``genotype`` come out as JSON text (`json_text`), ready for
    `insert_architectures`; a genotype dict given several times is serialised once.
    """
    rows: list[dict[str, Any]] = []
    now = utcnow()
    texts: dict[int, str] = {}  # id(genotype) -> its JSON text; the items keep the dicts alive
    for position, item in enumerate(items):
        where = f"architectures[{position}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be a dict", field="architectures")
        phase, index, digest = item.get("phase"), item.get("index"), item.get("hash")
        if phase not in phases:
            raise InvalidInput(f"{where}: phase must be one of {', '.join(phases)}", field="phase")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise InvalidInput(f"{where}: index must be an integer >= 0", field="index")
        if not isinstance(digest, str) or not 0 < len(digest) <= 16:
            raise InvalidInput(f"{where}: hash must be a string of 1 to 16 characters", field="hash")
        genotype = item.get("genotype")
        if genotype is not None and not isinstance(genotype, dict):
            raise InvalidInput(f"{where}: genotype must be a dict or None", field="genotype")
        tokens = _int_list(item.get("tokens"), where)
        row = {
            "search_id": search_id,
            "epoch": epoch,
            "phase": phase,
            "index": index,
            "tokens": json.dumps(tokens) if as_json_text else tokens,
            "hash": digest,
            "genotype": _genotype_value(genotype, texts) if as_json_text else _cleaned(genotype),
            "created_at": now,
        }
        for key in _ARCH_FLOATS:
            try:
                row[key] = finite(item.get(key))
            except (TypeError, ValueError) as e:
                raise InvalidInput(f"{where}: {key} must be a number or None", field=key) from e
        rows.append(row)
    return rows


def _cleaned(genotype: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if genotype is None else clean_json(genotype)  # type: ignore[no-any-return]


def _genotype_value(genotype: dict[str, Any] | None, texts: dict[int, str]) -> str:
    if genotype is None:
        return "null"
    text = texts.get(id(genotype))
    if text is None:
        text = texts[id(genotype)] = json_text(genotype)
    return text


def insert_architectures(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT rows of `architecture_rows` (``as_json_text=True``) in the session's transaction;
    a row whose (search_id, epoch, phase, index) is taken is skipped (ON CONFLICT DO NOTHING; the
    first of duplicates within ``rows`` wins). Ids are assigned in the order of ``rows``.

    SQLite: one ``executemany`` of plain tuples. PostgreSQL: COPY into a temporary table, then
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. Either way no per-row SQLAlchemy processing.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    created = models.Architecture.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    values = [tuple(row[c] for c in ARCH_COLUMNS) for row in rows]
    if created is not None:  # SQLite stores datetimes as text in SQLAlchemy's format
        values = [(*v[:-1], created(v[-1])) for v in values]
    if dialect.name == "sqlite":
        connection.exec_driver_sql(_SQLITE_INSERT, values)
    elif dialect.name == "postgresql":
        try:
            _copy_then_insert(connection.connection.driver_connection, values)
        except dialect.dbapi.Error as e:  # type: ignore[union-attr] # raw driver calls: wrap as SQLAlchemy would
            raise DBAPIError.instance(_PG_INSERT, None, e, dialect.dbapi.Error) from e  # type: ignore[union-attr]
    else:
        raise Unavailable(f"unsupported database dialect {dialect.name!r}")


_TABLE = models.Architecture.__tablename__
_QUOTED = ", ".join(f'"{c}"' for c in ARCH_COLUMNS)
_CONFLICT = 'ON CONFLICT ("search_id", "epoch", "phase", "index") DO NOTHING'
_SQLITE_INSERT = (
    f'INSERT INTO "{_TABLE}" ({_QUOTED}) VALUES ({", ".join("?" * len(ARCH_COLUMNS))}) {_CONFLICT}'
)
_PG_STAGE = "enas_architectures_in"
_PG_CREATE_STAGE = (
    f'CREATE TEMPORARY TABLE "{_PG_STAGE}" ("ord" integer, "search_id" bigint, "epoch" integer, '
    '"phase" text, "index" integer, "tokens" jsonb, "genotype" jsonb, "hash" text, "reward" float8, '
    '"loss" float8, "accuracy" float8, "entropy" float8, "log_prob" float8, "created_at" timestamptz) '
    "ON COMMIT DROP"
)
_PG_INSERT = (
    f'INSERT INTO "{_TABLE}" ({_QUOTED}) SELECT {_QUOTED} FROM "{_PG_STAGE}" ORDER BY "ord" {_CONFLICT}'
)


def _copy_then_insert(driver_connection: Any, values: Sequence[tuple[Any, ...]]) -> None:
    """PostgreSQL (psycopg 3): COPY ``values`` into a temporary table, then one INSERT ... SELECT
    ... ON CONFLICT DO NOTHING in their order; the table goes with the transaction either way."""
    with driver_connection.cursor() as cursor:
        cursor.execute(_PG_CREATE_STAGE)
        with cursor.copy(f'COPY "{_PG_STAGE}" ("ord", {_QUOTED}) FROM STDIN') as copy:
            for position, value in enumerate(values):
                copy.write_row((position, *value))
        cursor.execute(_PG_INSERT)
        cursor.execute(f'DROP TABLE "{_PG_STAGE}"')  # a second call in the same transaction


def retrain_status(status: str, *, allowed: Sequence[str]) -> None:
    """Raise InvalidInput unless ``status`` is one of ``allowed``."""
    if status not in allowed:
        raise InvalidInput(f"status must be one of {', '.join(allowed)}", field="status")


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque page cursor carrying ``values`` (the sort key of the last row handed out)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values of a cursor from :func:`encode_cursor`; anything else: InvalidInput (field cursor)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as e:
        raise InvalidInput("cursor is not one this server handed out", field="cursor") from e
    numeric = isinstance(values, list) and all(
        v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
    if not numeric or len(values) != size:
        raise InvalidInput("cursor is not one this server handed out", field="cursor")
    return values


def check_limit(limit: int, maximum: int) -> None:
    """Raise InvalidInput (field limit) unless 1 <= limit <= maximum."""
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}", field="limit")


def translate(error: SQLAlchemyError) -> EnasError:
    """The project error for a SQLAlchemy error (raise it ``from`` the original)."""
    if is_unreachable(error):
        return Unavailable(f"database unavailable: {getattr(error, 'orig', None) or error}")
    if isinstance(error, IntegrityError):
        return Conflict(f"conflicts with stored data: {error.orig}")
    return EnasError(f"database error: {error.__class__.__name__}")


class StoreCore:
    """Connection handling shared by the store's parts."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        """Build from a database URL (owns its engine) or from an existing engine (does not)."""
        if (url is None) == (engine is None):
            raise ValueError("give exactly one of url or engine")
        self._engine = engine if engine is not None else make_engine(url)  # type: ignore[arg-type]
        self._url = url if url is not None else self._engine.url.render_as_string(hide_password=False)
        self._owns_engine = engine is None
        self._sessions = make_session_factory(self._engine)

    @property
    def url(self) -> str:
        """The database URL this store was built from."""
        return self._url

    @property
    def engine(self) -> Engine:
        return self._engine

    def dispose(self) -> None:
        """Close pooled connections (only of an engine this store created)."""
        if self._owns_engine:
            self._engine.dispose()

    def ping(self) -> None:
        """Raises :class:`Unavailable` when the database cannot be reached."""
        ping(self._engine)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self._url}  # never the live engine

    def __setstate__(self, state: dict[str, Any]) -> None:
        StoreCore.__init__(self, state["url"])

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction; ``write`` takes SQLite's write lock at BEGIN (see ``service.db``)."""
        try:
            with self._sessions.begin() as session:
                if write:
                    session.connection(execution_options={WRITE_OPTION: True})
                yield session
        except SQLAlchemyError as e:
            raise translate(e) from e

    @staticmethod
    def _insert_ignoring_duplicates(session: Session, model: type[models.Base], keys: list[str]) -> Any:
        """INSERT ... ON CONFLICT (keys) DO NOTHING for the session's dialect (executemany-ready)."""
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            return postgresql.insert(model).on_conflict_do_nothing(index_elements=keys)
        if dialect == "sqlite":
            return sqlite.insert(model).on_conflict_do_nothing(index_elements=keys)
        raise Unavailable(f"unsupported database dialect {dialect!r}")

    @staticmethod
    def _search_row(session: Session, search_id: int, *, lock: bool = False) -> Search:
        query = select(Search).where(Search.id == search_id)
        row = session.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise NotFound(f"search {search_id} not found", field="search_id")
        return row

    @staticmethod
    def _check_fence(row: Search, fencing_token: int | None) -> None:
        if fencing_token is not None and fencing_token != row.fencing_token:
            raise Conflict(
                f"search {row.id} is leased with fencing token {row.fencing_token}, not {fencing_token}"
            )
