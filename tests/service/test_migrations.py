"""The migrations build exactly the models' schema, on both backends, and re-running them is a no-op."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.store import Store
from service.store.db import upgrade
from service.store.models import Architecture, Base, Search
from tests.service.conftest import postgres_schema


def test_models_match_migrations(store: Store) -> None:
    upgrade(store.url)  # already at head: nothing to do
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0003"


def test_concurrent_upgrades_on_a_new_sqlite_file(tmp_path: Path) -> None:
    """The API and a worker starting together both migrate; one does it, the other finds it done."""
    url = f"sqlite:///{tmp_path / 'new' / 'enas.db'}"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(url)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = Store(url)
    assert store.counts_by_status()["queued"] == 0
    store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_0002_keeps_the_rows_written_under_0001(backend: str, tmp_path: Path) -> None:
    """Rows stored by the first schema (JSONB on PostgreSQL, an index on hash) read back the same
    after 0002 retypes the JSON columns and drops that index."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            url = stack.enter_context(postgres_schema(migrate=False))
        upgrade(url, "0001")
        store = Store(url)
        with store.engine.begin() as conn:  # the 0001 columns only (the models have later ones)
            new = Search.__table__.insert().values(spec={"space": "micro", "epochs": 2}, total_epochs=2)
            sid = conn.execute(new).inserted_primary_key[0]
        genotype = {"version": 1, "space": "micro", "tokens": [0, 1], "structured": {"normal": [1.5, None]}}
        item = {"phase": "sample", "index": 0, "tokens": [0, 1], "hash": "abc", "reward": 0.5}
        item["genotype"] = genotype
        with store.engine.begin() as conn:  # as 0001's code wrote it: through SQLAlchemy's JSON types
            conn.execute(Architecture.__table__.insert(), [{**item, "search_id": sid, "epoch": 0}])
        store.dispose()
        upgrade(url)
        store = Store(url)
        rows, _ = store.list_architectures(search_id=sid)
        assert [(r.tokens, r.genotype, r.hash, r.reward) for r in rows] == [([0, 1], genotype, "abc", 0.5)]
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("architectures")}
        assert "ix_architectures_hash" not in indexes and "ix_architectures_search_reward" in indexes
        store.record_epoch(search_id=sid, epoch=1, metrics={}, architectures=[{**item, "index": 1}])
        assert [r.genotype for r in store.list_architectures(search_id=sid)[0]] == [genotype, genotype]
        store.dispose()
