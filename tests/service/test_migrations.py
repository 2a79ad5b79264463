"""The migrations build exactly the models' schema, on both backends, and re-running them is a no-op."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.db import upgrade
from service.models import Base
from service.store import Store


def test_models_match_migrations(store: Store) -> None:
    upgrade(store.url)  # already at head: nothing to do
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0001"


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
