"""Persistence: the first house of ``service``, the infrastructure the API and the workers share.

- `base`: `BaseStore`, the store's contract written once (docstrings are the contract);
- `sql`: `Store`, the one implementation (SQLite or PostgreSQL), composed of parts by concern
  (`searches`, `epochs`, `retrains`, each a `part.StorePart`) over one `db.Database`; `rows`:
  validation, bulk insert and cursors for those parts;
- `records`: the frozen snapshots every method returns; `models`: the SQLAlchemy tables;
- `db`: engines, `Database` (one transaction per call, errors translated) and `upgrade` (Alembic,
  whose scripts are in ``migrations/``).

Imports: SQLAlchemy, Alembic and ``service.errors``/``service.settings`` only; never the API, the
queue, the CLI, ``workers``, torch or Ray. Import the store from here: ``from service.store import
Store, SearchRecord``.
"""

from service.store.base import BaseStore
from service.store.records import ArchitectureRecord, DerivedRecord, EpochRecord, RetrainRecord, SearchRecord
from service.store.sql import Store

__all__ = [
    "ArchitectureRecord",
    "BaseStore",
    "DerivedRecord",
    "EpochRecord",
    "RetrainRecord",
    "SearchRecord",
    "Store",
]
