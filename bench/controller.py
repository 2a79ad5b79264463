"""Controller speed: architectures sampled per second and REINFORCE update time, per space.

For each space, the paper preset's controller (micro and macro: hidden 64; rnn: hidden 100) through
``enas_core.controller_trainer.ControllerTrainer`` (what the actors call, plain-Python results included):

* ``sample``: ``sample(n)`` for n in ``--batch-sizes`` (1, 10, 100): archs/s and ms per call;
* ``update``: one Adam step of REINFORCE over a batch of ``--update-batch`` (10) architectures with
  random rewards: ms per update.

``--device cuda`` moves the policy and its sampling generator to the GPU (the trainer itself is
device-agnostic past that); the default is the CPU, where the actors run it.

Usage: ``python -m bench.controller [--spaces micro,macro,rnn] [--device cpu] [--smoke]``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bench.common import apply_threads, base_parser, csv_list, guarded, set_output_file, stopwatch, summarize
from bench.workloads import SPACES, device_name, device_sync, plan_for

BENCH = "controller"


def make_trainer(space: str, size: str, device: str, seed: int = 0) -> Any:
    """The paper (or demo) preset's ControllerTrainer, moved to ``device``."""
    from enas_core.controller_trainer import ControllerTrainer

    plan = plan_for(space, size, "cpu")
    trainer = ControllerTrainer(plan.space(), plan.controller, plan.controller_train, seed)
    if torch.device(device).type != "cpu":
        trainer.controller.to(device)
        trainer.generator = torch.Generator(device=device).manual_seed(seed)
    return trainer


def calls_for(n: int, budget: int) -> int:
    """How many calls of sample(n) one measurement makes (about ``budget`` architectures, >= 2 calls)."""
    return max(2, budget // n)


def time_calls(fn: Callable[[], Any], calls: int, sync: Callable[[], None] | None) -> float:
    """Seconds for ``calls`` calls of ``fn``."""
    with stopwatch(sync) as t:
        for _ in range(calls):
            fn()
    return t[0]


def measure_sampling(trainer: Any, n: int, repeats: int, budget: int, device: str) -> dict[str, Any]:
    sync = device_sync(device)
    trainer.sample(n)  # warm-up
    calls = calls_for(n, budget)
    seconds = [time_calls(lambda: trainer.sample(n), calls, sync) for _ in range(repeats)]
    return {
        "n": n,
        "calls": calls,
        "archs_per_s": summarize([n * calls / s for s in seconds]),
        "ms_per_call": summarize([1000.0 * s / calls for s in seconds]),
    }


def measure_update(trainer: Any, batch: int, repeats: int, calls: int, device: str) -> dict[str, Any]:
    rng = random.Random(0)
    tokens = [s.tokens for s in trainer.sample(batch)]

    def update() -> None:
        trainer.update(tokens, [rng.random() for _ in tokens])

    sync = device_sync(device)
    update()  # warm-up
    seconds = [time_calls(update, calls, sync) for _ in range(repeats)]
    return {"batch": batch, "calls": calls, "ms_per_update": summarize([1000.0 * s / calls for s in seconds])}


def run_space(space: str, size: str, args: Any, repeats: int) -> None:
    config: dict[str, Any] = {"space": space, "size": size, "repeats": repeats}

    def sampling() -> dict[str, Any]:
        trainer = make_trainer(space, size, args.device)
        config.update(_describe(trainer))
        rows = [measure_sampling(trainer, n, repeats, args.budget, args.device) for n in args.batch_sizes]
        return {"sample": rows, **{f"archs_per_s_n{r['n']}": r["archs_per_s"]["median"] for r in rows}}

    def updating() -> dict[str, Any]:
        trainer = make_trainer(space, size, args.device)
        return measure_update(trainer, args.update_batch, repeats, args.update_calls, args.device)

    dev = device_name(args.device)
    guarded(BENCH, f"sample/{space}/{size}", config, sampling, device=dev)
    guarded(BENCH, f"update/{space}/{size}", dict(config), updating, device=dev)


def _describe(trainer: Any) -> dict[str, Any]:
    return {
        "num_tokens": trainer.space.num_tokens,
        "hidden": trainer.ccfg.hidden,
        "parameters": sum(p.numel() for p in trainer.controller.parameters()),
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else BENCH)
    parser.add_argument("--spaces", type=csv_list, default=list(SPACES))
    parser.add_argument("--size", default="paper", choices=("paper", "demo", "smoke"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in csv_list(s)], default=[1, 10, 100])
    parser.add_argument("--budget", type=int, default=200, help="architectures per sampling measurement")
    parser.add_argument("--update-batch", type=int, default=10)
    parser.add_argument("--update-calls", type=int, default=10)
    parser.set_defaults(threads=1)  # as the controller actor runs (Ray: OMP_NUM_THREADS = num_cpus = 1)
    args = parser.parse_args(argv)
    set_output_file(args.out)
    apply_threads(args.threads)
    repeats = 1 if args.smoke else args.repeats
    if args.smoke:
        args.batch_sizes, args.budget, args.update_calls = [1, 10], 10, 2
    for space in args.spaces:
        run_space(space, args.size, args, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
