"""The demo: start the whole stack, run one micro search on digits through the HTTP API, show results.

    python scripts/demo.py            # what `make demo` runs
    python scripts/demo.py --short    # the short form that `make test` runs

Starts `enasctl up` (API + worker + embedded Redis, SQLite, local Ray) in a fresh ENAS_HOME,
submits a search with POST /searches, follows it with a progress bar, then prints the derived
architecture, its retrained test accuracy, the reward per epoch and the page's URL.
Exit status 0 only when the search succeeded and its reward rose.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from service.cli.client import EnasClient  # noqa: E402
from service.cli.searches import follow_search  # noqa: E402

console = Console()

FULL_SPEC = {"space": "micro", "dataset": "digits", "preset": "demo-micro", "seed": 0, "name": "demo"}
SHORT_SPEC = {
    **FULL_SPEC,
    "name": "demo-short",
    "epochs": 3,
    "derive": {"num_samples": 8, "top_k": 2},
    "retrain": {"epochs": 2},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sparkline(values: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(bars[int((v - lo) / span * (len(bars) - 1))] for v in values)


def report(client: EnasClient, search_id: int, url: str) -> bool:
    """Print the results; return True when the reward rose across epochs."""
    epochs = client.epochs(search_id)["items"]
    rewards = [e["metrics"]["reward_mean"] for e in epochs]
    console.rule("reward per epoch (mean over the controller phase)")
    for e, r in zip(epochs, rewards, strict=True):
        console.print(f"  epoch {e['epoch']:>2}  {r:.4f}  entropy {e['metrics'].get('entropy', 0):.3f}")
    console.print(f"  {sparkline(rewards)}  {rewards[0]:.4f} -> {rewards[-1]:.4f}")
    rose = len(rewards) > 1 and rewards[-1] > rewards[0]
    entropies = [e["metrics"].get("entropy", 0.0) for e in epochs]
    if rose:  # at this size most of the rise is the shared weights learning; the policy moves slowly
        console.print(
            f"  the reward rose: the shared weights learn (policy entropy {entropies[0]:.3f} -> "
            f"{entropies[-1]:.3f})"
        )
    else:
        console.print("  [red]the reward did not rise[/red]")

    derived = client.derived(search_id)["items"]
    console.rule("derived architectures (scored on one validation minibatch with the shared weights)")
    for d in derived:
        console.print(f"  #{d['rank']} architecture {d['architecture_id']}  score {d['score']:.4f}")
    if derived:
        best = client.architecture(derived[0]["architecture_id"])
        structured = best["genotype"].get("structured", {})
        for cell, nodes in structured.items():
            console.print(f"  {cell} cell: {nodes}")
    console.rule("retrained from scratch (test split, never used for selection)")
    for r in client.retrains(search_id)["items"]:
        console.print(
            f"  architecture {r['architecture_id']}: {r['status']}  test accuracy "
            f"{r.get('test_score')}  params {r.get('params')}"
        )
    console.rule()
    console.print(f"the search page: {url}ui/searches/{search_id}   all searches: {url}")
    return rose


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="a few epochs (what make test runs)")
    parser.add_argument("--home", default=str(ROOT / ".enas" / "demo"), help="ENAS_HOME (wiped first)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the stack up afterwards until Ctrl-C")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed (default 0)")
    args = parser.parse_args()

    home = Path(args.home)
    shutil.rmtree(home, ignore_errors=True)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
    env.update(ENAS_HOME=str(home), PYTHONUNBUFFERED="1")
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "stack.log", "w")  # noqa: SIM115 - lives as long as the stack
    console.print(f"starting enas-service (API, worker, embedded Redis, SQLite, local Ray); log: {log.name}")
    stack = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ok = False
    try:
        with EnasClient(url) as client:
            client.wait_ready(timeout=120)
            spec = {**(SHORT_SPEC if args.short else FULL_SPEC), "seed": args.seed}
            search = client.submit(spec)
            console.print(f"POST /searches -> search {search['id']} ({search['status']}): {spec}")
            final = follow_search(client, search["id"])
            if final.get("status") != "succeeded":
                console.print(f"[red]search ended {final.get('status')}: {final.get('error')}[/red]")
                console.print(f"see {log.name}")
                return 1
            ok = report(client, search["id"], url)
            if args.keep:
                console.print("the stack stays up; Ctrl-C stops it")
                stack.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGTERM)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
        log.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
