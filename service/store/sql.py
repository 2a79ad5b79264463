"""The SQL store: `Store`, on SQLite (the embedded default) or PostgreSQL.

It is composed of one part per concern, each a small class implementing its share of the contract
on `service.store.base.BaseStore` against the same `Database`:

- `service.store.searches.SearchesPart`: a search's life (create, claim, finish, cancel, requeue);
- `service.store.epochs.EpochsPart`: an epoch's rows, and the epochs and architectures read back;
- `service.store.retrains.RetrainsPart`: derived architectures and retraining runs.

The parts share no state but the database; none calls another.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from service.store.db import Database
from service.store.epochs import EpochsPart
from service.store.retrains import RetrainsPart
from service.store.searches import SearchesPart


class Store(SearchesPart, EpochsPart, RetrainsPart):
    """Persistence of searches, their sampled architectures, epochs, derivations and retrains.

    Build one per process: ``Store(url)`` (owns its engine) or ``Store(engine=...)`` (does not).
    A ``Store`` pickles as its URL only; unpickling reconnects.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self._db = Database(url, engine=engine)

    @property
    def url(self) -> str:
        return self._db.url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations, `/metrics` and tests)."""
        return self._db.engine

    def ping(self) -> None:
        self._db.ping()

    def dispose(self) -> None:
        self._db.dispose()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self._db.url}  # never the live engine

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._db = Database(state["url"])
