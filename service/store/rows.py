"""Rows in and out of the store: validation of what the workers hand in (architectures, statuses,
JSON values), the bulk insert of an epoch's architectures, and the opaque page cursors. Used by the
store's parts only; not a public interface (use ``service.store``)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.errors import InvalidInput, Unavailable
from service.store import models
from service.store.models import utcnow

ARCH_SLOT = ["search_id", "epoch", "phase", "index"]
_ARCH_FLOATS = ("reward", "loss", "accuracy", "entropy", "log_prob")
_PLAIN_INT = frozenset({int})
# The architectures columns written by `insert_architectures`, in order.
ARCH_COLUMNS = (
    "search_id",
    "epoch",
    "phase",
    "index",
    "tokens",
    "genotype",
    "hash",
    "reward",
    "loss",
    "accuracy",
    "entropy",
    "log_prob",
    "created_at",
)


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
        elif id(genotype) in texts:
            text = texts[id(genotype)]
        else:
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
            connection.exec_driver_sql(_SQLITE_INSERT, rows)
    elif dialect.name == "postgresql":
        import psycopg  # the driver `service.store.db.normalize_url` names for PostgreSQL

        try:
            with _driver_connection(connection).cursor() as cursor:
                with cursor.copy(_PG_COPY) as copy:
                    copy.set_types(_PG_TYPES)
                    for value in values:
                        copy.write_row(value)
        except psycopg.Error as e:  # raw driver calls: wrap as SQLAlchemy would
            raise DBAPIError.instance(_PG_COPY, None, e, psycopg.Error) from e
    else:
        raise Unavailable(f"unsupported database dialect {dialect.name!r}")


def _driver_connection(connection: Connection) -> Any:
    """The DBAPI driver's own connection under ``connection`` (psycopg's, for its COPY API)."""
    driver = connection.connection.driver_connection
    if driver is None:  # only once the pooled connection was invalidated
        raise Unavailable("the database connection was closed")
    return driver


_TABLE = models.Architecture.__tablename__
_QUOTED = ", ".join(f'"{c}"' for c in ARCH_COLUMNS)
_SQLITE_INSERT = f'INSERT INTO "{_TABLE}" ({_QUOTED}) VALUES ({", ".join("?" * len(ARCH_COLUMNS))})'
_PG_COPY = f'COPY "{_TABLE}" ({_QUOTED}) FROM STDIN (FORMAT BINARY)'
# How psycopg sends ARCH_COLUMNS in the binary COPY. The two JSON columns go as "text": a ``json``
# value's binary form is its text, which we already have (psycopg's "json" would serialise again).
_PG_TYPES = [
    "int8",
    "int4",
    "text",
    "int4",
    "text",
    "text",
    "text",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "timestamptz",
]


def retrain_status(status: str, *, allowed: Sequence[str]) -> None:
    """Raise InvalidInput unless ``status`` is one of ``allowed``."""
    if status not in allowed:
        raise InvalidInput(f"status must be one of {', '.join(allowed)}", field="status")


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque page cursor carrying ``values`` (the sort key of the last row handed out)."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values of a cursor from :func:`encode_cursor`: ``size`` values, the last a row id and the
    others sort keys (a finite number or null). Anything else: InvalidInput (field cursor)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError) as e:
        raise InvalidInput("cursor is not one this server handed out", field="cursor") from e
    if not (isinstance(values, list) and len(values) == size and _is_id(values[-1])):
        raise InvalidInput("cursor is not one this server handed out", field="cursor")
    if not all(v is None or _is_finite(v) for v in values[:-1]):
        raise InvalidInput("cursor is not one this server handed out", field="cursor")
    return values


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _is_finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return abs(value) < 2**63 if isinstance(value, int) else math.isfinite(value)


def check_limit(limit: int, maximum: int) -> None:
    """Raise InvalidInput (field limit) unless 1 <= limit <= maximum."""
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}", field="limit")
