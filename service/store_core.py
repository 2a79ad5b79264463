"""The plumbing under :class:`service.store.Store`: connection, transactions, error translation,
row validation and cursors. Not a public interface; use ``service.store``."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
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
    """``value`` as the JSON text the JSON columns store: what ``json.dumps(clean_json(value))``
    gives, in compact form (no spaces); None -> ``"null"``, as SQLAlchemy's JSON type stores it.

    Serialised in one pass by orjson (about 10x ``json.dumps``), which writes NaN and infinities as
    null, tuples as lists and numpy scalars as numbers, as `clean_json` does; anything it cannot
    serialise (a 65-bit integer, a non-string key of an odd type) goes through `clean_json` first,
    which raises InvalidInput for what JSON cannot hold. One difference: dict keys True, False and
    None become "true", "false", "null" here, not "True", "False", "None".
    """
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return orjson.dumps(clean_json(value), option=_ORJSON_OPTIONS).decode()


_ORJSON_OPTIONS = (
    orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME  # not JSON types: `clean_json` rejects them
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _int_list(tokens: Any, where: str) -> list[int]:
    if isinstance(tokens, list | tuple) and set(map(type, tokens)) <= _PLAIN_INT:
        return list(tokens)  # the common case, checked at C speed
    if not isinstance(tokens, list | tuple) or not all(
        isinstance(t, int) and not isinstance(t, bool) or hasattr(t, "item") for t in tokens
    ):
        raise InvalidInput(f"{where}: tokens must be a list of integers", field="tokens")
    return [int(t) for t in tokens]


def _validated(position: int, item: Any, phases: Sequence[str]) -> tuple[Any, ...]:
    """One architecture dict checked: ``(phase, index, hash, genotype, tokens, *floats)`` with the
    floats of ``_ARCH_FLOATS`` (None for NaN and infinities). Raises InvalidInput naming the field."""

    def bad(field: str, what: str) -> InvalidInput:
        return InvalidInput(f"architectures[{position}]: {field} {what}", field=field)

    if not isinstance(item, dict):
        raise InvalidInput(f"architectures[{position}] must be a dict", field="architectures")
    phase, index, digest = item.get("phase"), item.get("index"), item.get("hash")
    genotype = item.get("genotype")
    if phase not in phases:
        raise bad("phase", f"must be one of {', '.join(phases)}")
    if type(index) is not int or index < 0:  # bool is no index either
        raise bad("index", "must be an integer >= 0")
    if not isinstance(digest, str) or not 0 < len(digest) <= 16:
        raise bad("hash", "must be a string of 1 to 16 characters")
    if genotype is not None and not isinstance(genotype, dict):
        raise bad("genotype", "must be a dict or None")
    tokens = _int_list(item.get("tokens"), f"architectures[{position}]")
    floats = []
    for key in _ARCH_FLOATS:
        try:
            floats.append(finite(item.get(key)))
        except (TypeError, ValueError) as e:
            raise bad(key, "must be a number or None") from e
    return (phase, index, digest, genotype, tokens, *floats)


def architecture_rows(
    search_id: int, epoch: int, items: Sequence[dict[str, Any]], *, phases: Sequence[str]
) -> list[dict[str, Any]]:
    """Validate architecture dicts and turn them into rows (dicts) of the ``architectures`` table,
    for the ORM (`architecture_values` is the bulk form)."""
    now = utcnow()
    rows = []
    for position, item in enumerate(items):
        phase, index, digest, genotype, tokens, *floats = _validated(position, item, phases)
        row = {
            "search_id": search_id,
            "epoch": epoch,
            "phase": phase,
            "index": index,
            "tokens": tokens,
            "hash": digest,
            "genotype": None if genotype is None else clean_json(genotype),
            "created_at": now,
        }
        row.update(zip(_ARCH_FLOATS, floats, strict=True))
        rows.append(row)
    return rows


def architecture_values(
    search_id: int, epoch: int, items: Sequence[dict[str, Any]], *, phases: Sequence[str]
) -> Iterator[tuple[Any, ...]]:
    """Validate architecture dicts and turn them into tuples of ARCH_COLUMNS for
    `insert_architectures`, lazily (so on PostgreSQL the client validates and serialises while the
    server stores the rows before). ``tokens`` and ``genotype`` come as JSON text (`json_text`; a
    genotype dict given several times is serialised once). Of items with the same (phase, index)
    the first is kept. Raises InvalidInput (while iterating) at the first bad item.
    """
    now = utcnow()
    texts: dict[int, str] = {}  # id(genotype) -> its JSON text; the items keep the dicts alive
    seen: set[tuple[str, int]] = set()
    for position, item in enumerate(items):
        phase, index, digest, genotype, tokens, *floats = _validated(position, item, phases)
        if (phase, index) in seen:
            continue
        seen.add((phase, index))
        if genotype is None:
            text = "null"
        elif (text := texts.get(id(genotype))) is None:  # type: ignore[assignment]
            text = texts[id(genotype)] = json_text(genotype)
        yield (search_id, epoch, phase, index, json_text(tokens), text, digest, *floats, now)


def insert_architectures(session: Session, values: Iterable[tuple[Any, ...]]) -> None:
    """INSERT `architecture_values` in the session's transaction, ids in their order. The caller
    makes sure none of their slots is stored yet (`Store.record_epoch` writes an epoch's rows once,
    under the search's row lock). An error raised by ``values`` (InvalidInput) aborts the insert.

    SQLite: one ``executemany`` of plain tuples. PostgreSQL: one binary COPY straight into the
    table, fed as ``values`` yields. Either way no per-row SQLAlchemy processing.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "sqlite":
        column = models.Architecture.__table__.c.created_at
        created = column.type.dialect_impl(dialect).bind_processor(dialect)
        if created is not None:  # SQLAlchemy stores datetimes on SQLite as text in its own format
            values = ((*v[:-1], created(v[-1])) for v in values)
        rows = list(values)
        if rows:
            connection.exec_driver_sql(_SQLITE_INSERT, rows)  # type: ignore[arg-type]
    elif dialect.name == "postgresql":
        try:
            with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(_PG_COPY) as copy:
                    copy.set_types(_PG_TYPES)
                    for value in values:
                        copy.write_row(value)
        except dialect.dbapi.Error as e:  # type: ignore[union-attr] # raw driver calls: wrap as SQLAlchemy would
            raise DBAPIError.instance(_PG_COPY, None, e, dialect.dbapi.Error) from e  # type: ignore[union-attr]
    else:
        raise Unavailable(f"unsupported database dialect {dialect.name!r}")


_TABLE = models.Architecture.__tablename__
_QUOTED = ", ".join(f'"{c}"' for c in ARCH_COLUMNS)
_SQLITE_INSERT = f'INSERT INTO "{_TABLE}" ({_QUOTED}) VALUES ({", ".join("?" * len(ARCH_COLUMNS))})'
_PG_COPY = f'COPY "{_TABLE}" ({_QUOTED}) FROM STDIN (FORMAT BINARY)'
# How psycopg sends ARCH_COLUMNS in the binary COPY. The two JSON columns go as "text": a ``json``
# value's binary form is its text, which we already have (psycopg's "json" would serialise again).
_PG_TYPES = ["int8", "int4", "text", "int4", "text", "text", "text",
             "float8", "float8", "float8", "float8", "float8", "timestamptz"]  # fmt: skip


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
