"""enasctl's results commands: best, retrain, retrains, export (json, pytorch, onnx)."""

from __future__ import annotations

import io
import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from service import artifacts
from service.cli.client import EnasClient, EnasClientError
from service.cli.common import (
    JsonOpt,
    Opt,
    ServerOpt,
    app,
    connected,
    console,
    failure,
    print_json,
    usage,
)
from service.cli.render import print_best, print_retrains


# -- results -------------------------------------------------------------------------------------
@app.command()
def best(search_id: int, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The best architecture of a search (derived rank 1, else the best sampled reward) and its cells."""
    with connected(server) as client:
        result = client.best(search_id)
    if as_json:
        print_json(result)
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
        raise usage("give --architecture or --top-k, not both")
    with connected(server) as client:
        runs = client.retrain(search_id, architecture_ids=architecture or None, top_k=top_k, epochs=epochs)
        if watch_:
            runs = _wait_retrains(client, search_id, {r["id"] for r in runs["items"]})
    if as_json:
        print_json(runs)
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
    with connected(server) as client:
        runs = client.retrains(search_id)
    if as_json:
        print_json(runs)
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
        raise usage("--format onnx writes a binary file: give --output FILE")
    with connected(server) as client:
        architecture_id = _export_target(client, search_id, architecture)
        if fmt is ExportFormat.onnx:
            assert output is not None
            note = _export_onnx(client, search_id, architecture_id, output, weights)
        else:
            body = client.export(architecture_id, fmt.value)
            text = body if isinstance(body, str) else json.dumps(body, indent=2, sort_keys=True) + "\n"
            _write_text(text, output)
            note = ""
    if output is not None:
        what = f"{fmt.value} of architecture {architecture_id} (search {search_id})"
        console.print(f"wrote {output}: {what}{note}", highlight=False)


def _export_target(client: EnasClient, search_id: int, architecture_id: int | None) -> int:
    """The architecture to export: the given one (checked to belong to the search), else the best."""
    if architecture_id is None:
        return int(client.best(search_id)["architecture"]["id"])
    owner = client.architecture(architecture_id)["search_id"]
    if owner != search_id:
        raise EnasClientError(
            f"architecture {architecture_id} belongs to search {owner}, not {search_id}",
            status=422,
            code="invalid_input",
            field="architecture",
        )
    return architecture_id


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise usage(f"cannot write {output}: {e.strerror}") from e


def _export_onnx(
    client: EnasClient, search_id: int, architecture_id: int, output: Path, weights: Path | str | None
) -> str:
    """Build the child network here (the API process never loads torch) and write it as ONNX."""
    document = client.export(architecture_id, "json")
    try:
        from enas_core.codegen import read_document
        from enas_core.export import build_child, check_onnx, export_onnx, load_weights
    except ImportError as e:
        raise failure(f"ONNX export needs torch in this environment: {e}") from e
    if weights is None:
        weights = _trained_weights(client, search_id, architecture_id)
    try:
        genotype, network = read_document(document if isinstance(document, dict) else {})
        model = build_child(genotype, network)
        if weights is not None:
            load_weights(model, io.BytesIO(artifacts.get_bytes(str(weights))))
        export_onnx(model, network, output)
    except (ValueError, RuntimeError, OSError) as e:  # artifacts.ArtifactError is a RuntimeError
        raise failure(f"ONNX export failed: {e}") from e
    try:
        check_onnx(output)
        checked = "onnx.checker passed"
    except ImportError:
        checked = "not checked: install onnx"
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and friends
        raise failure(f"the ONNX file {output} fails onnx.checker: {e}") from e
    return f"; {'weights ' + str(weights) if weights else 'fresh weights'}; {checked}"


def _trained_weights(client: EnasClient, search_id: int, architecture_id: int) -> str | None:
    """The URI of the architecture's retrained weights when a retrain stored them where this process
    can read them (a local or shared path, ``file://``, ``s3://``); None: no such retrain."""
    for run in client.retrains(search_id)["items"]:
        uri = run.get("artifact_uri")
        if uri and run["architecture_id"] == architecture_id and run["status"] == "succeeded":
            try:
                if artifacts.exists(uri):
                    return str(uri)
            except artifacts.ArtifactError as e:
                raise failure(f"cannot read the retrained weights: {e}") from e
    return None
