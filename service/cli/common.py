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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from service.cli.client import EnasClient, EnasClientError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
HELP = __doc__

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="ENAS_SERVER", help="API base URL (default http://127.0.0.1:8000)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")]


@contextmanager
def connected(server: str | None) -> Iterator[EnasClient]:
    """A client of ``server`` (else ENAS_SERVER, else http://127.0.0.1:8000; ENAS_TOKEN as the bearer
    token); an EnasClientError raised in the block exits as `fail` says: 2 for a 4xx answer, 1
    otherwise."""
    url = server or os.environ.get("ENAS_SERVER") or "http://127.0.0.1:8000"
    with EnasClient(url, token=os.environ.get("ENAS_TOKEN")) as client:
        try:
            yield client
        except EnasClientError as e:
            raise fail(e) from e


def fail(e: EnasClientError) -> typer.Exit:
    """Report a client error: exit 2 for a 4xx answer (bad input), 1 otherwise."""
    hint = " (is the server up? see --server / ENAS_SERVER)" if e.is_unreachable else ""
    err_console.print(f"[red]error:[/red] {e}{hint}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE if e.is_client_error else EXIT_FAILURE)


def failure(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_FAILURE)


def usage(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def exit_for(final: Mapping[str, Any]) -> typer.Exit:
    """Exit 0 when the search succeeded, 1 when it failed or was cancelled."""
    return typer.Exit(EXIT_OK if final.get("status") == "succeeded" else EXIT_FAILURE)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


Opt = typer.Option
