"""enasctl's entry point, its search commands (submit, status, list, watch, spaces, cancel,
resume) and `enasctl worker`; the results commands are in `service.cli.results`, the process commands in
`service.cli.cli`, the app and its conventions (exit codes, --server, --json) in
`service.cli.common`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.cli.client import TERMINAL_STATUSES, EnasClient
from service.cli.common import (
    JsonOpt,
    Opt,
    ServerOpt,
    app,
    connected,
    console,
    err_console,
    exit_for,
    print_json,
    usage,
)
from service.cli.render import print_spaces


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
        raise ValueError("give a spec file, --space (see `enasctl spaces`) or --preset")
    return spec


# -- searches ------------------------------------------------------------------------------------
SpecFileArg = Annotated[Path | None, typer.Argument(help="Spec file, YAML or JSON (optional with --space).")]
DatasetOpt = Annotated[str | None, Opt(help="digits, cifar10, synthetic-cifar, ptb or synthetic-ptb.")]
SetOpt = Annotated[list[str] | None, Opt("--set", help="section.key=value (a YAML value); repeatable.")]


@app.command()
def submit(
    spec_file: SpecFileArg = None,
    space: Annotated[str | None, Opt(help="Search space: micro, macro, rnn, nasnet.")] = None,
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
    flags = {
        "space": space,
        "dataset": dataset,
        "preset": preset,
        "epochs": epochs,
        "seed": seed,
        "name": name,
        "data_dir": data_dir,
    }
    try:
        spec = build_spec(spec_file, flags, overrides or [])
    except ValueError as e:
        raise usage(str(e)) from e
    with connected(server) as client:
        search = client.submit(spec)
        if as_json and watch_:  # JSON lines: the new search, then one line per change
            typer.echo(json.dumps(search, sort_keys=True, default=str))
        elif as_json:
            print_json(search)
        else:
            console.print(f"submitted search [bold]{search['id']}[/bold] ({search['status']})")
        if not watch_:
            return
        final = _follow_json(client, search["id"]) if as_json else follow_search(client, search["id"])
    raise exit_for(final)


@app.command()
def status(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show one search: status, progress, best reward, derived and retrained results."""
    with connected(server) as client:
        search = client.search(search_id)
        derived = client.derived(search_id)
        retrains = client.retrains(search_id)
    if as_json:
        print_json({"search": search, "derived": derived, "retrains": retrains})
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
    with connected(server) as client:
        page = client.searches(status=status_, limit=limit)
    if as_json:
        print_json(page)
        return
    table = Table("id", "status", "space", "dataset", "epoch", "best reward", "created")
    for s in page["items"]:
        spec = s.get("spec") or {}
        best = s.get("best_reward")
        table.add_row(
            str(s["id"]),
            s["status"],
            spec.get("space", ""),
            spec.get("dataset", ""),
            f"{s.get('epoch') if s.get('epoch') is not None else '-'}/{s.get('total_epochs', '')}",
            "-" if best is None else f"{best:.4f}",
            str(s.get("created_at", ""))[:19],
        )
    console.print(table)


@app.command()
def watch(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Follow a search live: a progress bar over epochs with reward and entropy (--json: one JSON
    line per change). Rides out a server restart; exits 0 when the search succeeds, else 1."""
    with connected(server) as client:
        final = _follow_json(client, search_id) if as_json else follow_search(client, search_id)
    raise exit_for(final)


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

    --json prints each space's full description: params, every decision, the sizes, exact
    integers, each labelled (literal count, paper formula), and its known genotypes (name -> tokens).
    """
    from enas_core.spaces import GenotypeError, describe_all, get_plugin

    try:
        if space:
            get_plugin(space)
    except GenotypeError as e:
        raise usage(str(e)) from e
    described = {name: d for name, d in describe_all().items() if not space or name == space}
    if as_json:
        print_json(described)
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
    with connected(server) as client:
        search = client.cancel(search_id) if action == "cancel" else client.resume(search_id)
    if as_json:
        print_json(search)
        return
    pending = " (cancel requested: it stops at its next step)" if search.get("cancel_requested") else ""
    console.print(f"search {search_id}: {search['status']}{pending}")


# -- following a search --------------------------------------------------------------------------
def follow_search(client: EnasClient, search_id: int) -> dict[str, Any]:
    """Draw a progress bar over epochs; print one line per finished epoch; return the final state."""
    printed: set[int] = set()
    final: dict[str, Any] = {}
    columns = (
        TextColumn("[bold]search {task.fields[sid]}[/bold] {task.fields[state]}"),
        BarColumn(),
        TextColumn("epoch {task.completed:.0f}/{task.fields[epochs]}"),
        TextColumn("reward {task.fields[reward]}  entropy {task.fields[entropy]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            "search", total=None, sid=search_id, state="", reward="-", entropy="-", epochs="?"
        )
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
                    f"acc {m.get('shared_accuracy', 0):.4f}  {m.get('images_per_s', 0):.0f} img/s"
                )
                fields.update(reward=f"{m.get('reward_mean', 0):.4f}", entropy=f"{m.get('entropy', 0):.3f}")
            progress.update(task, total=total, completed=done, **fields)
    if final.get("status") == "failed":
        err_console.print(f"[red]search {search_id} failed:[/red] {final.get('error')}")
    elif final.get("status") in TERMINAL_STATUSES:
        console.print(f"search {search_id} {final['status']}")
    return final


def print_search(search: dict[str, Any]) -> None:
    spec = search.get("spec") or {}
    console.print(
        f"[bold]search {search['id']}[/bold]  {search['status']}  "
        f"{spec.get('space')} on {spec.get('dataset')} (preset {spec.get('preset')})"
    )
    epoch = search.get("epoch")
    progress = 100 * (search.get("progress") or 0)
    console.print(
        f"  epoch {'-' if epoch is None else epoch + 1}/{search.get('total_epochs')}  "
        f"progress {progress:.0f}%  best reward {search.get('best_reward')}"
    )
    if search.get("pending_reason"):
        console.print(f"  [yellow]pending:[/yellow] {escape(search['pending_reason'])}")
    if search.get("error"):
        console.print(f"  [red]error:[/red] {search['error']}")


def print_results(derived: dict[str, Any], retrains: dict[str, Any]) -> None:
    for d in derived.get("items", [])[:5]:
        console.print(f"  derived #{d['rank']}: architecture {d['architecture_id']} score {d['score']:.4f}")
    for r in retrains.get("items", []):
        console.print(
            f"  retrain {r['id']} of architecture {r['architecture_id']}: {r['status']}, "
            f"test score {r.get('test_score')}, params {r.get('params')}"
        )
