"""The command line (`enasctl`) and the HTTP client it is built on: the third house of ``service``.

- `client`: `EnasClient`, one method per endpoint of the HTTP API (httpx only);
- `common`: the typer app and its conventions (exit codes, ``--server``, ``--json``);
- `searches`, `results`: the commands that talk to a server through the client;
- `render`: rich tables and text for the commands;
- `cli`: the entry point (`main`; ``python -m service.cli``) and the process commands (serve, up,
  worker, db upgrade).

Imports: the modules here import the client and the standard library, typer and rich; they never
import ``service.api``, the store or the queue at module level. The one exception to the layers is
`cli`, which starts processes: it imports the API, the store, the queue's connection and (for
``enasctl worker`` only) ``workers`` inside the commands that need them, lazily, so that a
client command loads none of them.
"""


def main() -> None:
    """The `enasctl` console script: runs `service.cli.cli.main` (imported here, on call, so that
    importing the client does not load the commands)."""
    from service.cli.cli import main as run

    run()
