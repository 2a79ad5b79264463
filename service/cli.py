"""`enasctl`: the command line of enas-service.

Exit codes: 0 ok; 1 a failure (the server failed, a search failed, the server is unreachable);
2 usage or bad input (a malformed spec file, a 4xx answer such as an invalid field).
The server is `--server URL`, else ENAS_SERVER, else http://127.0.0.1:8000.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.client import TERMINAL_STATUSES, EnasClient, EnasClientError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
HELP = __doc__

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)

ServerOpt = Annotated[str | None, typer.Option("--server", envvar="ENAS_SERVER",
                                               help="API base URL (default http://127.0.0.1:8000).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")]


def _client(server: str | None) -> EnasClient:
    url = server or os.environ.get("ENAS_SERVER") or "http://127.0.0.1:8000"
    return EnasClient(url, token=os.environ.get("ENAS_TOKEN"))


def _fail(e: EnasClientError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {e}")
    return typer.Exit(EXIT_USAGE if e.is_client_error else EXIT_FAILURE)


def _usage(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(EXIT_USAGE)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML search spec; raise ValueError naming the file on bad content."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read spec file {path}: {e.strerror}") from e
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of spec fields, not {type(data).__name__}")
    return data


# -- read commands -------------------------------------------------------------------------------
@app.command()
def submit(
    spec_file: Annotated[Path, typer.Argument(help="Search spec, JSON or YAML.")],
    watch_: Annotated[bool, typer.Option("--watch", "-w", help="Follow the search to its end.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a search spec; print its id (and follow it with --watch)."""
    try:
        spec = load_spec_file(spec_file)
    except ValueError as e:
        raise _usage(str(e)) from e
    with _client(server) as client:
        try:
            search = client.submit(spec)
        except EnasClientError as e:
            raise _fail(e) from e
        if as_json and not watch_:
            _print_json(search)
            return
        console.print(f"submitted search [bold]{search['id']}[/bold] ({search['status']})")
        if watch_:
            final = follow_search(client, search["id"])
            raise typer.Exit(EXIT_OK if final.get("status") == "succeeded" else EXIT_FAILURE)


@app.command()
def status(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show one search: status, progress, best reward, derived and retrained results."""
    with _client(server) as client:
        try:
            search = client.search(search_id)
            derived = client.derived(search_id)
            retrains = client.retrains(search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json({"search": search, "derived": derived, "retrains": retrains})
        return
    print_search(search)
    print_results(derived, retrains)


@app.command("list")
def list_(
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: int = 50,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List searches, newest first."""
    with _client(server) as client:
        try:
            page = client.searches(status=status_, limit=limit)
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json(page)
        return
    table = Table("id", "status", "space", "dataset", "epoch", "best reward", "created")
    for s in page["items"]:
        spec = s.get("spec") or {}
        best = s.get("best_reward")
        table.add_row(str(s["id"]), s["status"], spec.get("space", ""), spec.get("dataset", ""),
                      f"{s.get('epoch') if s.get('epoch') is not None else '-'}/{s.get('total_epochs', '')}",
                      "-" if best is None else f"{best:.4f}", str(s.get("created_at", ""))[:19])
    console.print(table)


@app.command()
def watch(search_id: int, server: ServerOpt = None) -> None:
    """Follow a search live: a progress bar over epochs with reward and entropy."""
    with _client(server) as client:
        try:
            final = follow_search(client, search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    raise typer.Exit(EXIT_OK if final.get("status") == "succeeded" else EXIT_FAILURE)


@app.command()
def spaces(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List the search spaces: their decisions and sizes (computed locally, no server needed)."""
    from enas_core.spaces import describe_all

    data = describe_all()
    if as_json:
        _print_json(data)
        return
    table = Table("space", "tokens", "size", "notes")
    for name, d in data.items():
        table.add_row(name, str(d.get("num_tokens")), str(d.get("size")), str(d.get("size_note", "")))
    console.print(table)


# -- following a search --------------------------------------------------------------------------
def follow_search(client: EnasClient, search_id: int) -> dict[str, Any]:
    """Draw a progress bar over epochs; print one line per finished epoch; return the final state."""
    printed: set[int] = set()
    final: dict[str, Any] = {}
    columns = (TextColumn("[bold]search {task.fields[sid]}[/bold] {task.fields[state]}"), BarColumn(),
               TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
               TextColumn("reward {task.fields[reward]}  entropy {task.fields[entropy]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("search", total=None, sid=search_id, state="", reward="-", entropy="-")
        for search in client.follow(search_id):
            final = search
            total = search.get("total_epochs") or None
            done = (search.get("epoch") + 1) if search.get("epoch") is not None else 0
            fields: dict[str, Any] = {"state": search["status"]}
            new_epochs = [e for e in client.epochs(search_id)["items"] if e["epoch"] not in printed]
            for e in new_epochs:
                printed.add(e["epoch"])
                m = e["metrics"]
                progress.console.print(
                    f"  epoch {e['epoch']:>3}  reward {m.get('reward_mean', 0):.4f}  "
                    f"entropy {m.get('entropy', 0):.3f}  shared loss {m.get('shared_loss', 0):.4f}  "
                    f"acc {m.get('shared_accuracy', 0):.4f}  {m.get('images_per_s', 0):.0f} img/s")
                fields.update(reward=f"{m.get('reward_mean', 0):.4f}", entropy=f"{m.get('entropy', 0):.3f}")
            progress.update(task, total=total, completed=done, **fields)
    if final.get("status") == "failed":
        err_console.print(f"[red]search {search_id} failed:[/red] {final.get('error')}")
    elif final.get("status") in TERMINAL_STATUSES:
        console.print(f"search {search_id} {final['status']}")
    return final


def print_search(search: dict[str, Any]) -> None:
    spec = search.get("spec") or {}
    console.print(f"[bold]search {search['id']}[/bold]  {search['status']}  "
                  f"{spec.get('space')} on {spec.get('dataset')} (preset {spec.get('preset')})")
    epoch = search.get("epoch")
    console.print(f"  epoch {'-' if epoch is None else epoch + 1}/{search.get('total_epochs')}  "
                  f"progress {100 * (search.get('progress') or 0):.0f}%  best reward {search.get('best_reward')}")
    if search.get("error"):
        console.print(f"  [red]error:[/red] {search['error']}")


def print_results(derived: dict[str, Any], retrains: dict[str, Any]) -> None:
    for d in derived.get("items", [])[:5]:
        console.print(f"  derived #{d['rank']}: architecture {d['architecture_id']} score {d['score']:.4f}")
    for r in retrains.get("items", []):
        console.print(f"  retrain {r['id']} of architecture {r['architecture_id']}: {r['status']}, "
                      f"test score {r.get('test_score')}, params {r.get('params')}")


# -- processes -----------------------------------------------------------------------------------
@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API server (migrates the database first)."""
    import uvicorn

    from service.api.app import create_app
    from service.settings import get_settings

    uvicorn.run(create_app(get_settings()), host=host, port=port, log_level="warning")


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    worker_id: Annotated[str | None, typer.Option(help="Name of this worker.")] = None,
) -> None:
    """Run a worker: take searches from the queue and run them on Ray."""
    from service.settings import get_settings
    from workers.worker import run_worker

    run_worker(get_settings(), burst=burst, worker_id=worker_id)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) to ENAS_DATABASE_URL."""
    from service.db import upgrade
    from service.settings import get_settings

    settings = get_settings()
    upgrade(settings.database_url)
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
    from service.db import upgrade
    from service.redis_conn import start_embedded
    from service.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ENAS_HOME=str(settings.home))
    embedded = None
    if not settings.redis_url:
        embedded, url = start_embedded(settings.home)
        env["ENAS_REDIS_URL"] = url
    upgrade(settings.database_url)
    exe = [sys.executable, "-m", "service.cli"]
    children = [subprocess.Popen([*exe, "serve", "--host", host, "--port", str(port)], env=env)]
    children += [subprocess.Popen([*exe, "worker", "--worker-id", f"{os.uname().nodename}-{os.getpid()}-{i}"],
                                  env=env) for i in range(workers)]
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
