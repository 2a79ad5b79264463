"""Service speed: API latency against a running server, and architecture rows stored per second.

* ``api``: starts ``python -m service.cli serve`` on a free port with a temporary ENAS_HOME (SQLite
  there, unless ``--database-url``) and an embedded Redis (``service.queue.connection.start_embedded``),
  then measures, one request at a time, ``POST /searches`` (submit) and ``GET /searches/{id}``
  (status) latency, p50 and p99;
* ``open_loop``: ``GET /searches/{id}`` at a fixed offered rate (``--rate`` 200/s for
  ``--duration`` 10 s) on a schedule fixed in advance (httpx async; a late response does not delay
  the next request). Latency is counted from each request's scheduled time, so queueing shows;
  ``service_ms`` from when it was actually sent. The load generator runs on the same 2 cores.
* ``store``: ``Store.record_epoch`` with the rows of the paper's micro epoch (281 train + 300
  sample architectures, each with its genotype dict) on SQLite (a temporary file) and PostgreSQL
  (``ENAS_BENCH_POSTGRES_URL``, default the machine's database ``test``, in a schema created and
  dropped here): rows per second.

Imports neither torch nor Ray. Usage: ``python -m bench.service [--parts api,open_loop,store]``.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import base_parser, csv_list, guarded, latency_summary, set_output_file, summarize

BENCH = "service"
POSTGRES_URL = os.environ.get("ENAS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PAPER_TRAIN_ROWS = 45_000 // 160  # one row per shared-phase minibatch
PAPER_SAMPLE_ROWS = 30 * 10  # controller steps x architectures per step
WARMUP_S = 3.0  # the open loop's discarded first run


# --- a server of our own -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(database_url: str | None) -> Iterator[str]:
    """``enasctl serve`` in a subprocess with its own home and embedded Redis; yields its URL."""
    from service.queue.connection import start_embedded

    home = Path(tempfile.mkdtemp(prefix="enas-bench-"))
    handle, redis_url = start_embedded(home)
    port = free_port()
    env = {**os.environ, "ENAS_HOME": str(home), "ENAS_REDIS_URL": redis_url, "ENAS_AUTH_TOKENS": ""}
    if database_url:
        env["ENAS_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    log = (home / "server.log").open("wb")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server, home / "server.log")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        handle.shutdown()


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = log.read_text(errors="replace")
            raise RuntimeError(f"the server exited ({server.returncode}): {err[-500:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer /healthz within {timeout:.0f}s")


# --- closed loop: one request at a time -----------------------------------------------------------
def submit_latencies(client: httpx.Client, n: int) -> tuple[list[float], list[int]]:
    """Seconds of ``n`` sequential ``POST /searches`` (demo micro spec) and the ids created."""
    seconds, ids = [], []
    for i in range(n):
        began = time.perf_counter()
        response = client.post("/searches", json={"space": "micro", "name": f"bench-{i}"})
        seconds.append(time.perf_counter() - began)
        response.raise_for_status()
        ids.append(int(response.json()["id"]))
    return seconds, ids


def status_latencies(client: httpx.Client, ids: Sequence[int], n: int) -> list[float]:
    """Seconds of ``n`` sequential ``GET /searches/{id}`` over ``ids``."""
    seconds = []
    for i in range(n):
        began = time.perf_counter()
        response = client.get(f"/searches/{ids[i % len(ids)]}")
        seconds.append(time.perf_counter() - began)
        response.raise_for_status()
    return seconds


def measure_api(url: str, submits: int, statuses: int, repeats: int) -> tuple[dict[str, Any], list[int]]:
    numbers: dict[str, Any] = {"submit": [], "status": []}
    ids: list[int] = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        submit_latencies(client, 5)  # warm-up (first requests open the database, Redis)
        status_latencies(client, [1], 5)
        for _ in range(repeats):
            sub, new_ids = submit_latencies(client, submits)
            ids.extend(new_ids)
            numbers["submit"].append(latency_summary(sub))
            numbers["status"].append(latency_summary(status_latencies(client, ids, statuses)))
    for kind in ("submit", "status"):
        for key in ("p50_ms", "p99_ms"):
            numbers[f"{kind}_{key}"] = summarize([r[key] for r in numbers[kind]])
    return numbers, ids


# --- open loop: a fixed schedule --------------------------------------------------------------------
# The load generator shares the 2 cores with the server, so it must be cheap: plain asyncio streams
# speaking just enough HTTP/1.1 (keep-alive GETs, Content-Length bodies), about 0.1 ms of CPU a
# request. httpx's async client spent several ms of CPU a request here, more than the server, and
# so measured mostly itself (bench/RESULTS.md).
async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One GET on a keep-alive connection; returns the status code (the body is read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _open_loop(
    url: str, ids: Sequence[int], rate: float, duration: float, connections: int = 64
) -> dict[str, Any]:
    """``GET /searches/{id}`` sent on a fixed schedule (``rate`` per second for ``duration`` s),
    whether or not earlier ones have been answered; latency counts from the scheduled send time
    (no coordinated omission). ``connections`` keep-alive connections are opened first."""
    host, port = url.removeprefix("http://").split(":")
    count = int(rate * duration)
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, int(port)))
    requests = [f"GET /searches/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for i in ids]
    results: list[tuple[float, float, int]] = []  # (from schedule, from send, status)

    async def one(i: int, scheduled: float) -> None:
        connection = await idle.get()
        sent = time.perf_counter()
        try:
            code = await _get(*connection, requests[i % len(requests)])
            idle.put_nowait(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            code = 0  # that connection is dropped
        done = time.perf_counter()
        results.append((done - scheduled, done - sent, code))

    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait()[1].close()
    ok = [r for r in results if r[2] == 200]
    return {
        "offered_rate": rate,
        "duration_s": duration,
        "requests": count,
        "ok": len(ok),
        "errors": count - len(ok),
        "achieved_rate": len(ok) / elapsed,
        "latency": latency_summary([r[0] for r in ok]),
        "service": latency_summary([r[1] for r in ok]),
    }


def measure_open_loop(
    url: str, ids: Sequence[int], rate: float, duration: float, repeats: int
) -> dict[str, Any]:
    """``repeats`` open-loop runs after one discarded warm-up run of WARMUP_S at the same rate (the
    first burst of concurrent requests makes the server start its worker threads and open its
    pooled database connections: start-up, not steady state)."""
    warmup = asyncio.run(_open_loop(url, ids, rate, min(duration, WARMUP_S)))
    runs = [asyncio.run(_open_loop(url, ids, rate, duration)) for _ in range(repeats)]
    return {
        "warmup": {"duration_s": warmup["duration_s"], "p99_ms": warmup["latency"]["p99_ms"]},
        "runs": runs,
        "p50_ms": summarize([r["latency"]["p50_ms"] for r in runs]),
        "p99_ms": summarize([r["latency"]["p99_ms"] for r in runs]),
        "achieved_rate": summarize([r["achieved_rate"] for r in runs]),
        "p99_under_20ms": all(r["latency"]["p99_ms"] < 20.0 for r in runs),
    }


# --- the store ------------------------------------------------------------------------------------
def random_architectures(count: int, seed: int = 0) -> list[tuple[list[int], dict[str, Any], str]]:
    """``count`` random micro architectures (paper space) with their genotype dicts and hashes."""
    from enas_core.genotype import Genotype
    from enas_core.spaces import get_space

    space = get_space("micro", num_nodes=5)
    rng = random.Random(seed)
    archs = []
    for _ in range(count):
        tokens = [rng.randrange(d.choices) for d in space.decisions]
        g = Genotype.of(space, tokens)
        archs.append((list(g.tokens), g.to_dict(), g.hash()))
    return archs


def epoch_rows(
    archs: Sequence[tuple[list[int], dict[str, Any], str]], rng: random.Random
) -> list[dict[str, Any]]:
    """The ``architectures`` of one paper micro epoch, as the runner builds them, each row with
    the next architecture of ``archs`` (distinct genotype dicts: the worst case)."""
    rows = []
    picks = iter(archs)
    for phase, count in (("train", PAPER_TRAIN_ROWS), ("sample", PAPER_SAMPLE_ROWS)):
        for index in range(count):
            tokens, genotype, digest = next(picks)
            row = {"phase": phase, "index": index, "tokens": tokens, "genotype": genotype, "hash": digest}
            row.update(entropy=rng.uniform(20, 40), log_prob=-rng.uniform(20, 60))
            if phase == "train":
                row.update(loss=rng.uniform(0.5, 2.5), accuracy=rng.random())
            else:
                row.update(reward=rng.random())
            rows.append(row)
    return rows


def store_rows_per_s(url: str, epochs: int, repeats: int) -> dict[str, Any]:
    """Rows/s of ``record_epoch`` over ``epochs`` epochs of a fresh search, ``repeats`` times."""
    from service.spec import SearchSpec, resolve_spec
    from service.store import Store

    per_epoch = PAPER_TRAIN_ROWS + PAPER_SAMPLE_ROWS
    archs = random_architectures(per_epoch * epochs)
    rng = random.Random(1)
    spec = resolve_spec(SearchSpec(preset="paper-cifar10-micro", dataset="synthetic-cifar", epochs=epochs))
    store = Store(url)
    try:
        rates, per_epoch_ms = [], []
        for _ in range(repeats):
            search = store.create_search(spec=spec)
            batches = [epoch_rows(archs[e * per_epoch : (e + 1) * per_epoch], rng) for e in range(epochs)]
            began = time.perf_counter()
            for epoch, rows in enumerate(batches):
                store.record_epoch(
                    search_id=search.id, epoch=epoch, metrics={"reward_mean": 0.5}, architectures=rows
                )
            seconds = time.perf_counter() - began
            rates.append(sum(len(b) for b in batches) / seconds)
            per_epoch_ms.append(1000.0 * seconds / epochs)
    finally:
        store.dispose()
    return {
        "rows_per_epoch": per_epoch,
        "distinct_genotypes": True,
        "epochs": epochs,
        "rows_per_s": summarize(rates),
        "ms_per_epoch": summarize(per_epoch_ms),
        "meets_20k": statistics.median(rates) >= 20_000,
    }


@contextmanager
def sqlite_database() -> Iterator[str]:
    from service.store.db import upgrade

    folder = Path(tempfile.mkdtemp(prefix="enas-bench-db-"))
    url = f"sqlite:///{folder / 'enas.db'}"
    upgrade(url)
    yield url


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh, migrated schema on the PostgreSQL server, dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from service.store.db import normalize_url, upgrade

    schema = f"enas_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(normalize_url(base_url)).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(url_text)
        yield url_text
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- main -----------------------------------------------------------------------------------------
def run_api_parts(args: Any, parts: Sequence[str], repeats: int) -> None:
    if args.server:  # someone else's server (its own database; it must accept unauthenticated calls)
        config = {"server": args.server, "database": "the server's"}
        measure_api_parts(args, args.server.rstrip("/"), parts, repeats, config)
        return
    with running_server(args.database_url) as url:
        config = {
            "server": "enasctl serve (uvicorn + uvloop + httptools, 1 process)",
            "database": args.database_url or "sqlite",
        }
        measure_api_parts(args, url, parts, repeats, config)


def measure_api_parts(
    args: Any, url: str, parts: Sequence[str], repeats: int, config: dict[str, Any]
) -> None:
    ids: list[int] = []

    def api() -> dict[str, Any]:
        numbers, new_ids = measure_api(url, args.submits, args.statuses, repeats)
        ids.extend(new_ids)
        return numbers

    guarded(BENCH, "api", {**config, "submits": args.submits, "statuses": args.statuses}, api)
    if "open_loop" in parts:
        ids = ids or [1]
        loop_config = {
            **config,
            "rate": args.rate,
            "duration_s": args.duration,
            "client": "asyncio streams, 64 keep-alive connections",
        }
        guarded(
            BENCH,
            "open_loop",
            loop_config,
            lambda: measure_open_loop(url, ids, args.rate, args.duration, repeats),
        )


def run_store(args: Any, repeats: int) -> None:
    for backend in args.backends:
        config = {"backend": backend, "method": "Store.record_epoch", "rows": "paper micro epoch"}
        if backend == "sqlite":
            database = sqlite_database()
        else:
            database = postgres_schema(POSTGRES_URL)
            config["server"] = POSTGRES_URL.split("@")[-1]

        def measure(database: Any = database) -> dict[str, Any]:
            with database as url:
                return store_rows_per_s(url, args.epochs, repeats)

        guarded(BENCH, f"store/{backend}", config, measure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else BENCH)
    parser.add_argument("--parts", type=csv_list, default=["api", "open_loop", "store"])
    parser.add_argument("--backends", type=csv_list, default=["sqlite", "postgresql"])
    parser.add_argument("--database-url", default=None, help="the server's database (default: SQLite)")
    parser.add_argument("--server", default=None, help="measure this running server instead of starting one")
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--statuses", type=int, default=300)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=10, help="epochs recorded per store measurement")
    args = parser.parse_args(argv)
    set_output_file(args.out)
    repeats = 1 if args.smoke else args.repeats
    if args.smoke:
        args.submits, args.statuses, args.duration, args.rate, args.epochs = 5, 10, 1.0, 50.0, 2
    if "api" in args.parts or "open_loop" in args.parts:
        run_api_parts(args, args.parts, repeats)
    if "store" in args.parts:
        run_store(args, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
