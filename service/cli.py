"""enasctl: the command line of enas-service (ENAS, Pham et al. 2018, run as a service).

Exit codes: 0 ok; 1 failure (a search that failed or was cancelled, a server error, the server
unreachable, an export that could not be built); 2 usage or bad input (an unknown option, a bad
--set, a missing or malformed spec file, a field or id the server rejected: any 4xx answer).

Server: --server URL, else the ENAS_SERVER environment variable, else http://127.0.0.1:8000;
ENAS_TOKEN is sent as the bearer token. Read commands take --json for machine-readable output.

Shell completion: enasctl --install-completion, or enasctl --show-completion to print the script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.cli_render import print_best, print_retrains, print_spaces
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
    """Report a client error: exit 2 for a 4xx answer (bad input), 1 otherwise."""
    hint = " (is the server up? see --server / ENAS_SERVER)" if e.is_unreachable else ""
    err_console.print(f"[red]error:[/red] {e}{hint}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE if e.is_client_error else EXIT_FAILURE)


def _failure(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_FAILURE)


def _usage(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def _exit_for(final: Mapping[str, Any]) -> typer.Exit:
    """Exit 0 when the search succeeded, 1 when it failed or was cancelled."""
    return typer.Exit(EXIT_OK if final.get("status") == "succeeded" else EXIT_FAILURE)


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


def apply_override(spec: dict[str, Any], item: str) -> None:
    """Apply one ``--set section.key=value`` to `spec` (the value is read as YAML: 16, 0.5, true,
    null, [1, 2]; anything else stays a string). Raise ValueError naming the item on bad syntax."""
    path, sep, raw = item.partition("=")
    keys = [k.strip() for k in path.split(".")]
    if not sep or not all(keys):
        raise ValueError(f"bad --set {item!r}: expected section.key=value, e.g. child.channels=16")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    target = spec
    for key in keys[:-1]:
        node = target.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"bad --set {item!r}: {key} is not a section")
        target = node
    target[keys[-1]] = value


def build_spec(spec_file: Path | None, flags: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The spec to submit: the file's fields (if any), then the flags given, then each --set in order.

    Raises:
        ValueError: an unreadable or malformed file, a bad --set, or neither space nor preset.
    """
    spec = load_spec_file(spec_file) if spec_file is not None else {}
    spec.update({k: v for k, v in flags.items() if v is not None})
    for item in overrides:
        apply_override(spec, item)
    if "space" not in spec and "preset" not in spec:
        raise ValueError("give a spec file, --space (micro, macro or rnn) or --preset")
    return spec


# -- searches ------------------------------------------------------------------------------------
Opt = typer.Option
SpecFileArg = Annotated[Path | None, typer.Argument(help="Spec file, YAML or JSON (optional with --space).")]
DatasetOpt = Annotated[str | None, Opt(help="digits, cifar10, synthetic-cifar, ptb or synthetic-ptb.")]
SetOpt = Annotated[list[str] | None, Opt("--set", help="section.key=value (a YAML value); repeatable.")]


@app.command()
def submit(
    spec_file: SpecFileArg = None,
    space: Annotated[str | None, Opt(help="Search space: micro, macro or rnn.")] = None,
    dataset: DatasetOpt = None,
    preset: Annotated[str | None, Opt(help="Preset to start from (default demo-<space>).")] = None,
    epochs: Annotated[int | None, Opt(help="Search epochs.")] = None,
    seed: Annotated[int | None, Opt(help="Random seed.")] = None,
    name: Annotated[str | None, Opt(help="A name for the search.")] = None,
    data_dir: Annotated[str | None, Opt(help="Folder holding the cifar10 or ptb files.")] = None,
    overrides: SetOpt = None,
    watch_: Annotated[bool, Opt("--watch", "-w", help="Follow the search to its end.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a search from a spec file and/or flags; print its id, or follow it with --watch.

    Flags override the file's fields and each --set overrides one nested field, e.g.
    enasctl submit --space micro --dataset digits --epochs 2 --set child.channels=16 --watch
    """
    flags = {"space": space, "dataset": dataset, "preset": preset, "epochs": epochs, "seed": seed,
             "name": name, "data_dir": data_dir}  # fmt: skip
    try:
        spec = build_spec(spec_file, flags, overrides or [])
    except ValueError as e:
        raise _usage(str(e)) from e
    with _client(server) as client:
        try:
            search = client.submit(spec)
            if as_json and watch_:  # JSON lines: the new search, then one line per change
                typer.echo(json.dumps(search, sort_keys=True, default=str))
            elif as_json:
                _print_json(search)
            else:
                console.print(f"submitted search [bold]{search['id']}[/bold] ({search['status']})")
            if not watch_:
                return
            final = _follow_json(client, search["id"]) if as_json else follow_search(client, search["id"])
        except EnasClientError as e:
            raise _fail(e) from e
    raise _exit_for(final)


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
def watch(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Follow a search live: a progress bar over epochs with reward and entropy (--json: one JSON
    line per change). Rides out a server restart; exits 0 when the search succeeds, else 1."""
    with _client(server) as client:
        try:
            final = _follow_json(client, search_id) if as_json else follow_search(client, search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    raise _exit_for(final)


def _follow_json(client: EnasClient, search_id: int) -> dict[str, Any]:
    final: dict[str, Any] = {}
    for final in client.follow(search_id):
        typer.echo(json.dumps(final, sort_keys=True, default=str))
    return final


@app.command()
def spaces(
    space: Annotated[str | None, typer.Argument(help="One space (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The search spaces at their default sizes: decisions and sizes (computed here, no server).

    --json prints each space's full description: params, every decision, and the sizes, exact
    integers, each labelled (literal count, paper formula).
    """
    from enas_core.spaces import GenotypeError, get_space, list_spaces

    try:
        described = {name: get_space(name).describe() for name in ([space] if space else list_spaces())}
    except GenotypeError as e:
        raise _usage(str(e)) from e
    if as_json:
        _print_json(described)
        return
    print_spaces(console, described)


@app.command()
def cancel(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a search: at once when queued, at its next step when running (idempotent)."""
    _search_action(search_id, "cancel", server, as_json)


@app.command()
def resume(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Queue a failed or cancelled search again."""
    _search_action(search_id, "resume", server, as_json)


def _search_action(search_id: int, action: str, server: str | None, as_json: bool) -> None:
    with _client(server) as client:
        try:
            search = client.cancel(search_id) if action == "cancel" else client.resume(search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json(search)
        return
    pending = " (cancel requested: it stops at its next step)" if search.get("cancel_requested") else ""
    console.print(f"search {search_id}: {search['status']}{pending}")


# -- results -------------------------------------------------------------------------------------
@app.command()
def best(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The best architecture of a search (derived rank 1, else the best sampled reward) and its cells."""
    with _client(server) as client:
        try:
            result = client.best(search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json(result)
        return
    print_best(console, result)


RETRAIN_POLL_S = 2.0
RETRAIN_OPEN = ("queued", "running")


@app.command()
def retrain(
    search_id: int,
    architecture: Annotated[
        list[int] | None, Opt("--architecture", "-a", help="This architecture of the search (repeatable).")
    ] = None,
    top_k: Annotated[int | None, Opt("--top-k", min=1, help="The best N derived architectures.")] = None,
    epochs: Annotated[int | None, Opt(min=1, help="Retrain epochs (default: the spec's).")] = None,
    watch_: Annotated[bool, Opt("--watch", help="Wait until the runs finish, then print them.")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain architectures of a finished search from scratch (default: its best derived one) on a
    worker; prints the retrain runs (test score, parameters, FLOPs). `enasctl retrains` lists them."""
    if architecture and top_k is not None:
        raise _usage("give --architecture or --top-k, not both")
    with _client(server) as client:
        try:
            runs = client.retrain(
                search_id, architecture_ids=architecture or None, top_k=top_k, epochs=epochs
            )
            if watch_:
                runs = _wait_retrains(client, search_id, {r["id"] for r in runs["items"]})
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json(runs)
    else:
        print_retrains(console, search_id, runs["items"])
    if watch_ and any(r["status"] != "succeeded" for r in runs["items"]):
        raise typer.Exit(1)


def _wait_retrains(client: EnasClient, search_id: int, ids: set[int]) -> dict[str, Any]:
    """Poll the search's retrains until the runs ``ids`` have finished; returns those rows."""
    with console.status(f"retraining {len(ids)} architecture(s) of search {search_id}"):
        while True:
            rows = [r for r in client.retrains(search_id)["items"] if r["id"] in ids]
            if all(r["status"] not in RETRAIN_OPEN for r in rows):
                return {"items": rows}
            time.sleep(RETRAIN_POLL_S)


@app.command()
def retrains(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The retraining runs of a search: its top derived architectures trained from scratch after
    the search (the spec's retrain section) or by `enasctl retrain`, with test score, parameters and
    FLOPs."""
    with _client(server) as client:
        try:
            runs = client.retrains(search_id)
        except EnasClientError as e:
            raise _fail(e) from e
    if as_json:
        _print_json(runs)
        return
    print_retrains(console, search_id, runs["items"])


class ExportFormat(StrEnum):
    """What `enasctl export` writes."""

    json = "json"
    pytorch = "pytorch"
    onnx = "onnx"


ExportSearchArg = Annotated[int, typer.Argument(help="The search (its best, or --architecture).")]
OutputOpt = Annotated[Path | None, Opt("--output", "-o", help="File to write (default: stdout).")]
ArchitectureOpt = Annotated[int | None, Opt("--architecture", "-a", help="This architecture of the search.")]


@app.command()
def export(
    search_id: ExportSearchArg,
    fmt: Annotated[ExportFormat, Opt("--format", "-f", help="json, pytorch or onnx.")] = ExportFormat.json,
    output: OutputOpt = None,
    architecture: ArchitectureOpt = None,
    weights: Annotated[Path | None, Opt(help="onnx: a state_dict file to export with.")] = None,
    server: ServerOpt = None,
) -> None:
    """Export an architecture: its versioned genotype JSON, a standalone PyTorch model.py (runs with
    torch alone: import model; model.build_model()), or ONNX (built here with torch, checked with
    onnx.checker; weights: --weights, else the retrained ones when their file is reachable, else fresh).
    """
    if fmt is ExportFormat.onnx and output is None:
        raise _usage("--format onnx writes a binary file: give --output FILE")
    with _client(server) as client:
        try:
            architecture_id = _export_target(client, search_id, architecture)
            if fmt is ExportFormat.onnx:
                assert output is not None
                note = _export_onnx(client, search_id, architecture_id, output, weights)
            else:
                body = client.export(architecture_id, fmt.value)
                text = body if isinstance(body, str) else json.dumps(body, indent=2, sort_keys=True) + "\n"
                _write_text(text, output)
                note = ""
        except EnasClientError as e:
            raise _fail(e) from e
    if output is not None:
        what = f"{fmt.value} of architecture {architecture_id} (search {search_id})"
        console.print(f"wrote {output}: {what}{note}", highlight=False)


def _export_target(client: EnasClient, search_id: int, architecture_id: int | None) -> int:
    """The architecture to export: the given one (checked to belong to the search), else the best."""
    if architecture_id is None:
        return int(client.best(search_id)["architecture"]["id"])
    owner = client.architecture(architecture_id)["search_id"]
    if owner != search_id:
        raise EnasClientError(f"architecture {architecture_id} belongs to search {owner}, not {search_id}",
                              status=422, code="invalid_input", field="architecture")  # fmt: skip
    return architecture_id


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise _usage(f"cannot write {output}: {e.strerror}") from e


def _export_onnx(client: EnasClient, search_id: int, architecture_id: int, output: Path,
                 weights: Path | None) -> str:  # fmt: skip
    """Build the child network here (the API process never loads torch) and write it as ONNX."""
    document = client.export(architecture_id, "json")
    try:
        from enas_core.codegen import read_document
        from enas_core.export import build_child, check_onnx, export_onnx, load_weights
    except ImportError as e:
        raise _failure(f"ONNX export needs torch in this environment: {e}") from e
    if weights is None:
        weights = _trained_weights(client, search_id, architecture_id)
    try:
        genotype, network = read_document(document if isinstance(document, dict) else {})
        model = build_child(genotype, network)
        if weights is not None:
            load_weights(model, weights)
        export_onnx(model, network, output)
    except (ValueError, RuntimeError, OSError) as e:
        raise _failure(f"ONNX export failed: {e}") from e
    try:
        check_onnx(output)
        checked = "onnx.checker passed"
    except ImportError:
        checked = "not checked: install onnx"
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and friends
        raise _failure(f"the ONNX file {output} fails onnx.checker: {e}") from e
    return f"; {'weights ' + str(weights) if weights else 'fresh weights'}; {checked}"


def _trained_weights(client: EnasClient, search_id: int, architecture_id: int) -> Path | None:
    """The retrained weights of the architecture when a retrain stored them in a file reachable here."""
    from enas_core.export import local_path

    for run in client.retrains(search_id)["items"]:
        if run["architecture_id"] == architecture_id and run["status"] == "succeeded":
            path = local_path(run.get("artifact_uri"))
            if path is not None:
                return Path(path)
    return None


# -- following a search --------------------------------------------------------------------------
def follow_search(client: EnasClient, search_id: int) -> dict[str, Any]:
    """Draw a progress bar over epochs; print one line per finished epoch; return the final state."""
    printed: set[int] = set()
    final: dict[str, Any] = {}
    columns = (TextColumn("[bold]search {task.fields[sid]}[/bold] {task.fields[state]}"), BarColumn(),
               TextColumn("epoch {task.completed:.0f}/{task.fields[epochs]}"),
               TextColumn("reward {task.fields[reward]}  entropy {task.fields[entropy]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("search", total=None, sid=search_id, state="", reward="-", entropy="-",
                                 epochs="?")
        for search in client.follow(search_id):
            final = search
            total = search.get("total_epochs") or None
            epoch = search.get("epoch")
            done = epoch + 1 if epoch is not None else 0
            fields: dict[str, Any] = {"state": search["status"], "epochs": total or "?"}
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
    progress = 100 * (search.get("progress") or 0)
    console.print(f"  epoch {'-' if epoch is None else epoch + 1}/{search.get('total_epochs')}  "
                  f"progress {progress:.0f}%  best reward {search.get('best_reward')}")
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
    from service.logging import configure_logging
    from service.settings import get_settings

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                log_level=settings.log_level.lower())


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    worker_id: Annotated[str | None, typer.Option(help="Name of this worker.")] = None,
) -> None:
    """Run a worker: take searches from the queue and run them on Ray."""
    from service.logging import configure_logging
    from service.settings import get_settings
    from workers.worker import run_worker

    settings = get_settings()
    configure_logging(settings)
    run_worker(settings, burst=burst, worker_id=worker_id)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) to ENAS_DATABASE_URL."""
    from service.db import upgrade
    from service.settings import get_settings

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
    upgrade(settings.db_url)
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
    """The `enasctl` entry point (also `python -m service.cli`)."""
    app(prog_name="enasctl")


if __name__ == "__main__":
    main()
