"""A search claimed as a worker claims it, for benchmarks that drive the runner's phases.

The runner's phases take a real `workers.search_run.SearchClaim` (its batch-boundary checks read
Redis and the database); `claimed_search` builds one with real settings under a temporary ENAS_HOME
(SQLite and the embedded Redis), so a benchmark measures those checks as a worker pays them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.queue import Queue
from service.queue.connection import connect, start_embedded
from service.settings import Settings
from service.store import Store
from service.store.db import upgrade
from workers.search_run import SearchClaim, claim_search


@contextmanager
def claimed_search(spec: dict[str, Any]) -> Iterator[SearchClaim]:
    """A running search of ``spec`` claimed as a worker claims it, with real settings: a temporary
    ENAS_HOME with its SQLite database and embedded Redis (so the batch-boundary checks the phases
    make cost what they cost in a worker). Everything is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="enas-bench-") as home:
        settings = Settings(
            home=Path(home), database_url=None, redis_url=None, ray_address=None, artifact_dir=None
        )
        upgrade(settings.db_url)
        handle, _ = start_embedded(settings.home)
        store, client = Store(settings.db_url), connect(settings)
        try:
            queue = Queue.on(client, prefix="enas-bench")
            search = store.create_search(spec=spec)
            yield claim_search(store, queue, settings, search.id)
        finally:
            client.close()
            store.dispose()
            handle.shutdown()
