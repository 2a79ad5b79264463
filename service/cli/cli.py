"""enasctl's entry point (`main`) and its process commands: serve (the API), up (everything on this
machine), worker, db upgrade.

This is the one module of ``service`` that may import ``workers`` (the layer check exempts files
named ``cli.py``), and it does so lazily: ``workers`` (and with it torch and Ray) is imported inside
the `worker` command only, so every other command, and every module that imports the CLI's
packages, stays free of them. `serve` and `up` import the API and the store lazily too: ``enasctl
status`` needs neither.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from service.cli import searches  # noqa: F401  (registers the search commands first, for --help)
from service.cli.common import EXIT_FAILURE, EXIT_OK, app, console, db_app, err_console


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    worker_id: Annotated[str | None, typer.Option(help="Name of this worker.")] = None,
) -> None:
    """Run a worker: take searches from the queue and run them on Ray."""
    from service.logging import configure_logging
    from service.settings import get_settings
    from workers.actors import ClusterUnreachable
    from workers.worker import run_worker

    settings = get_settings()
    configure_logging(settings)
    try:
        run_worker(settings, burst=burst, worker_id=worker_id)
    except ClusterUnreachable as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(EXIT_FAILURE) from e


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API server (migrates the database first)."""
    import uvicorn

    from service.api.app import create_app
    from service.logging import configure_logging
    from service.settings import get_settings

    settings = get_settings().model_copy(update={"bind_host": host})  # a trusted Host name by default
    configure_logging(settings)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_config=None, log_level=settings.log_level.lower()
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) to ENAS_DATABASE_URL."""
    from service.settings import get_settings
    from service.store.db import upgrade

    settings = get_settings()
    upgrade(settings.db_url)
    console.print(f"database at {settings.database_url} is up to date")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the API server.")] = 8000,
    host: str = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="How many workers to start.")] = 1,
) -> None:
    """Start everything on this machine: embedded Redis (unless ENAS_REDIS_URL), the API, workers.

    Ctrl-C (or SIGTERM) stops all of it.
    """
    from service.queue.connection import start_embedded
    from service.settings import get_settings
    from service.store.db import upgrade

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ENAS_HOME=str(settings.home))
    embedded = None
    if not settings.redis_url:
        embedded, url = start_embedded(settings.home)
        env["ENAS_REDIS_URL"] = url
    upgrade(settings.db_url)
    exe = [sys.executable, "-m", "service.cli"]
    children = [subprocess.Popen([*exe, "serve", "--host", host, "--port", str(port)], env=env)]
    children += [
        subprocess.Popen([*exe, "worker", "--worker-id", f"{os.uname().nodename}-{os.getpid()}-{i}"], env=env)
        for i in range(workers)
    ]
    console.print(f"enas-service is up: http://{host}:{port}/  (home {settings.home}; Ctrl-C stops it)")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        _stop_children(children)
        if embedded is not None:
            embedded.shutdown()
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    raise typer.Exit(EXIT_FAILURE if failed and not stopping else EXIT_OK)


def _stop_children(children: list[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    for c in children:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for c in children:
        try:
            c.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()


from service.cli import results  # noqa: E402,F401  (registers the results commands last)


def main() -> None:
    """The `enasctl` entry point (also `python -m service.cli`)."""
    app(prog_name="enasctl")


if __name__ == "__main__":
    main()
