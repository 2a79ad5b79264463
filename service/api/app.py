"""The FastAPI application: ``create_app(settings)``; ``uvicorn --factory service.api.app:create_app``.

Nothing connects when the app is built. On start (lifespan) the database is migrated to the
newest schema, the store is opened and Redis is connected (a Redis that is down then is retried on
the next request needing it, and reported by ``/readyz``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from service.api.deps import connect_queue
from service.api.guards import BodyLimit, BrowserGuard, SecurityHeaders, TrustedHosts
from service.api.handlers import install_error_handlers
from service.api.responses import COMMON_ERRORS
from service.api.routes import (
    architectures,
    docs,
    health,
    metrics,
    pages,
    retrains,
    searches,
    session,
    spaces,
)
from service.auth import check_exposure
from service.errors import Unavailable
from service.logging import SearchLogContext
from service.settings import Settings, get_settings
from service.store import Store, db

logger = logging.getLogger(__name__)


def _open(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    db.upgrade(settings.db_url)
    app.state.store = Store(settings.db_url)
    try:
        connect_queue(app.state)
    except Unavailable as e:
        logger.warning("starting without Redis (retried on demand): %s", e.message)


def _close(app: FastAPI) -> None:
    if app.state.hub is not None:
        app.state.hub.stop()
    if app.state.redis is not None:
        app.state.redis.close()
    if app.state.store is not None:
        app.state.store.dispose()
    app.state.store = app.state.redis = app.state.queue = app.state.hub = None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_open, app)
    try:
        yield
    finally:
        await run_in_threadpool(_close, app)


def create_app(settings: Settings | None = None, *, queue_prefix: str = "enas") -> FastAPI:
    """Build the API for ``settings`` (default: the process settings from the environment).

    ``queue_prefix`` is the Redis key prefix of the job queue (tests share a server with their own).
    Raises `service.auth.AuthConfigError` for unusable tokens, or a non-loopback ``bind_host``
    without tokens and without ``insecure``.
    """
    app = FastAPI(
        title="enas-service",
        version="0.1.0",
        summary="Efficient Neural Architecture Search (Pham et al. 2018) as a service",
        lifespan=_lifespan,
        docs_url=None,  # served by `routes.docs` from the package, not a CDN
        redoc_url=None,
        responses=COMMON_ERRORS,
    )
    app.state.settings = settings = settings or get_settings()
    app.state.tokens = settings.tokens()  # AuthConfigError: `enasctl serve` exits 2 with its message
    check_exposure(app.state.tokens, settings.bind_host, insecure=settings.insecure)
    app.state.queue_prefix = queue_prefix
    app.state.store = app.state.redis = app.state.queue = app.state.hub = None
    app.state.queue_lock = threading.Lock()
    install_error_handlers(app)
    app.add_middleware(SearchLogContext)  # plain ASGI middlewares (see `SearchLogContext`)
    # Outermost last: security headers on every answer, then Host, then Origin and content type,
    # then the body limit (`service.api.guards`).
    app.add_middleware(BodyLimit)
    app.add_middleware(BrowserGuard, settings=app.state.settings)
    app.add_middleware(TrustedHosts, settings=app.state.settings)
    app.add_middleware(SecurityHeaders)
    for module in (searches, retrains, architectures, spaces, health, metrics, pages, docs, session):
        app.include_router(module.router)
    return app
