"""Service test fixtures: a fresh store on SQLite (temp file) and on PostgreSQL (own schema).

PostgreSQL is ``ENAS_TEST_POSTGRES_URL`` (default the machine's server, database ``test``). Each
test session creates its own schema (``enas_test_<random>``), migrates it, and drops it at the end,
so parallel runs never see each other's rows; tests truncate its tables before use.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.store import Store
from service.store.db import normalize_url, upgrade
from tests.stack import free_port

POSTGRES_URL = os.environ.get("ENAS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = ("retrains", "derived", "epochs", "architectures", "searches")


def _postgres_problem(url: str) -> str | None:
    engine = create_engine(normalize_url(url), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


@contextmanager
def postgres_schema(*, migrate: bool = True) -> Iterator[str]:
    """URL of a new schema on the PostgreSQL server (migrated to head unless ``migrate`` is False),
    dropped on exit; skips the test when the server is unreachable."""
    problem = _postgres_problem(POSTGRES_URL)
    if problem:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable ({problem}); set ENAS_TEST_POSTGRES_URL")
    schema = f"enas_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url_text)
        yield url_text
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, migrated schema on the PostgreSQL server (skips when it is unreachable)."""
    with postgres_schema() as url:
        yield url


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'enas.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
    else:
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        engine.dispose()
    s = Store(url)
    yield s
    s.dispose()


class Api:
    """A running API (a `ServerThread`) and what the tests need to reach behind it."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10)

    @property
    def store(self) -> Store:
        return self.server.app.state.store

    @property
    def queue(self) -> Any:
        return self.server.app.state.queue


class ServerThread:
    """An app served by uvicorn on a free port in a background thread (real HTTP)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start (see the log above)")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home folder whose embedded Redis (``service.queue.connection``) is stopped after the module."""
    from service.queue.connection import start_embedded

    home = tmp_path_factory.mktemp("home")
    handle, _ = start_embedded(home)
    yield home
    handle.shutdown()


@pytest.fixture(scope="session")
def serve() -> type[ServerThread]:
    """``with serve(app) as server:`` runs ``app`` on a free port (``server.url``)."""
    return ServerThread
