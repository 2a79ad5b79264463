"""Throughput of the shared-weight phase: images/s (tokens/s for rnn) per space and size.

Two measurements, each printed as JSON lines (see ``bench.common``):

* ``inprocess``: ``enas_core`` trainers in this process; the controller samples ``--steps``
  architectures in one call and the shared trainer trains one minibatch on each (in chunks of 64,
  like the runner). ``images_per_s`` counts training only, ``phase_images_per_s`` sampling too.
  Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, peak RSS on the CPU. At the paper's
  size the line also projects the shared phase of one epoch of the real dataset (45,000 CIFAR-10
  training images; PTB's 929k words).
* ``ray_vs_inprocess`` (CPU): the same epoch (shared phase over the trainer's ``steps_per_epoch``,
  then the controller phase) run in-process with ``enas_core.search.run_search_epoch`` and through
  the Ray actors with the runner's own ``shared_phase`` / ``controller_phase`` (on a real claim:
  `claimed_search`), alternating, with the in-process loop given the actor's torch threads (equal
  resources).

Usage: ``python -m bench.shared_train [--spaces micro,macro,rnn] [--sizes paper,demo] [--steps N]
[--device cpu|cuda] [--no-ray] [--smoke]``.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from bench.common import (
    apply_threads,
    base_parser,
    csv_list,
    guarded,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    set_output_file,
    stopwatch,
    summarize,
)
from bench.workloads import (
    CIFAR_TRAIN_IMAGES,
    PTB_TRAIN_WORDS,
    SIZES,
    SPACES,
    Workload,
    device_name,
    free,
    plan_for,
    prepare,
    resolved_spec,
    train_seconds,
    warm_up,
)
from workers.config import SearchPlan

if TYPE_CHECKING:  # the runner's side needs Ray, SQLAlchemy and Redis: imported where it runs
    from workers.search_run import SearchClaim

BENCH = "shared_train"
RAY_SECONDS = 90.0
"""Ray vs in-process: about how long the pairs of epochs of one space run."""
MAX_PAIRS = 61
DEFAULT_STEPS = {"paper": 3, "demo": 20, "smoke": 2}


# --- in-process ------------------------------------------------------------------------------------
def memory_begin(device: str) -> float | None:
    """Start a peak-memory window; returns the baseline (MiB)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    reset_peak_rss()
    return rss_mib()


def memory_end(device: str, base: float | None) -> dict[str, Any]:
    """Peak memory since `memory_begin`: absolute and above the baseline (MiB)."""
    if torch.device(device).type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "cuda_max_memory_allocated"
    else:
        peak = peak_rss_mib() or 0.0
        kind = "peak_rss"
    return {"memory_kind": kind, "peak_mib": peak, "peak_above_base_mib": peak - (base or 0.0)}


def real_steps_per_epoch(work: Workload) -> int:
    """Shared-phase steps of one epoch over the real dataset (CIFAR-10 45,000 images; PTB)."""
    child = work.plan.child
    if work.space == "rnn":
        return int(PTB_TRAIN_WORDS // (child.batch_size * child.bptt))
    return int(CIFAR_TRAIN_IMAGES // child.batch_size)


def controller_step_seconds(work: Workload, repeats: int) -> dict[str, float]:
    """Medians of one controller step's parts: sample archs_per_step, their rewards, one update."""
    n = work.plan.controller_train.archs_per_step
    sync = work.sync
    parts: dict[str, list[float]] = {"sample": [], "rewards": [], "update": []}
    for _ in range(repeats):
        with stopwatch() as t:
            drawn = work.sample(n)
        parts["sample"].append(t[0])
        with stopwatch(sync) as t:
            rewards = work.shared.rewards(drawn)
        parts["rewards"].append(t[0])
        with stopwatch() as t:
            work.controller.update(drawn, rewards)
        parts["update"].append(t[0])
    return {k: statistics.median(v) for k, v in parts.items()}


def search_projection(work: Workload, step_s: float, ctrl: dict[str, float]) -> dict[str, Any]:
    """The full search on this device at the measured speeds: epochs x (real shared phase +
    controller phase) + derivation (derive.num_samples rewards); store writes not included."""
    tc = work.plan.controller_train
    shared_s = real_steps_per_epoch(work) * step_s
    controller_s = tc.steps_per_epoch * (ctrl["sample"] + ctrl["rewards"] + ctrl["update"])
    per_reward = ctrl["rewards"] / max(1, tc.archs_per_step)
    derive_s = work.plan.derive_num_samples * per_reward
    total = work.plan.epochs * (shared_s + controller_s) + derive_s
    return {
        "real_steps_per_epoch": real_steps_per_epoch(work),
        "projected_shared_phase_s_per_epoch": shared_s,
        "projected_controller_phase_s_per_epoch": controller_s,
        "controller_step_s": ctrl,
        "epochs": work.plan.epochs,
        "projected_search_hours": total / 3600.0,
    }


def measure_inprocess(
    work: Workload, steps: int, repeats: int, warmup: int, project: bool = False
) -> dict[str, Any]:
    """Repeated shared phases of ``steps`` architectures; throughput, memory, projection."""
    warm_up(work, warmup)
    base = memory_begin(work.device)
    sample_s, train_s = [], []
    for _ in range(repeats):
        with stopwatch() as t:
            archs = work.sample(steps)
        sample_s.append(t[0])
        train_s.append(train_seconds(work, archs))
    numbers: dict[str, Any] = memory_end(work.device, base)
    items = steps * work.items_per_step
    phase = [items / (a + b) for a, b in zip(sample_s, train_s, strict=True)]
    numbers.update(
        {
            "steps": steps,
            "seconds_train": summarize(train_s),
            "seconds_sample": summarize(sample_s),
            f"{work.unit}_per_s": summarize([items / s for s in train_s]),
            f"phase_{work.unit}_per_s": summarize(phase),
            "ms_per_step": statistics.median(train_s) / steps * 1000.0,
        }
    )
    if work.size == "paper" and project:
        ctrl = controller_step_seconds(work, repeats)
        numbers.update(search_projection(work, statistics.median(train_s) / steps, ctrl))
    elif work.size == "paper":
        numbers["real_steps_per_epoch"] = real_steps_per_epoch(work)
        numbers["projected_shared_phase_s_per_epoch"] = (
            real_steps_per_epoch(work) * numbers["ms_per_step"] / 1e3
        )
    return numbers


def inprocess_one(args: Any, space: str, size: str, variant: str, repeats: int) -> None:
    """Measure and emit one in-process line."""
    steps = args.steps or DEFAULT_STEPS[size]
    warmup = args.warmup if args.warmup is not None else (1 if size == "paper" else 2)
    config: dict[str, Any] = {"path": "inprocess", "space": space, "size": size, "variant": variant}
    config.update(repeats=repeats, warmup_steps=warmup)

    def measure() -> dict[str, Any]:
        work = prepare(space, size, args.device, variant=variant)
        config.update(work.config())
        project = args.projection == "yes" or (args.projection == "auto" and work.device != "cpu")
        return measure_inprocess(work, steps, repeats, warmup, project)

    name = f"inprocess/{space}/{size}" + ("" if variant == "fp32" else f"/{variant}")
    guarded(BENCH, name, config, measure, device=device_name(args.device))
    free()


def run_inprocess(args: Any, sizes: Sequence[str], repeats: int) -> None:
    for size in sizes:
        for space in args.spaces:
            for variant in args.variants:
                if space != "rnn" or variant == "fp32":
                    inprocess_one(args, space, size, variant, repeats)


# --- Ray vs in-process -----------------------------------------------------------------------------
def _ray_init() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=100 * 1024 * 1024,
        )


def _actor_threads() -> int:
    """torch's thread count inside a 1-CPU Ray worker (Ray sets OMP_NUM_THREADS from num_cpus)."""
    import ray

    @ray.remote(num_cpus=1)
    def threads() -> int:
        import torch as t

        return int(t.get_num_threads())

    return int(ray.get(threads.remote()))


def _ray_epoch(
    claim: SearchClaim, plan: SearchPlan, controller: Any, shared: Any, steps: int
) -> tuple[float, float]:
    """(shared phase, whole epoch) seconds through the actors, as the runner drives them."""
    import ray

    from workers.runner import controller_phase, shared_phase

    with stopwatch() as whole:
        with stopwatch() as phase:
            train_batch, _parts = shared_phase(claim, controller, shared, 0, steps)
            ray.get(train_batch)
        controller_phase(claim, controller, shared, plan.controller_train)
    return phase[0], whole[0]


def _inprocess_epoch(work: Workload) -> tuple[float, float]:
    """(shared phase, whole epoch) seconds of ``run_search_epoch``."""
    from enas_core.search import run_search_epoch

    with stopwatch() as whole:
        result = run_search_epoch(work.shared, work.controller, 0)
    return result.metrics["shared_seconds"] or 0.0, whole[0]


def measure_ray_vs_inprocess(
    space: str, size: str, repeats: int, config: dict[str, Any], seconds: float = RAY_SECONDS
) -> dict[str, Any]:
    """Pairs of epochs of equal work, one in-process and one through the Ray actors; the median
    of the pairs' Ray/in-process ratios.

    Both sides start from the same seed and run the same epochs in lockstep, so the two epochs of
    a pair train and reward the very same architectures (the controller samples the same tokens:
    `tests/workers/test_actors.py`). Which side goes first alternates from pair to pair. As many
    pairs as fit in ``seconds`` (at least ``repeats``): single demo epochs vary by +-20% here from
    one second to the next, for both sides alike, and the median of many paired ratios is what
    stays put.
    """
    from bench.claim import claimed_search  # Ray, SQLAlchemy and Redis: not on a bare CUDA image

    _ray_init()
    threads = _actor_threads()
    plan = plan_for(space, size, "cpu")
    work = prepare(space, size, "cpu", seed=plan.seed)
    config.update(
        ctrl_steps=plan.controller_train.steps_per_epoch, archs_per_step=plan.controller_train.archs_per_step
    )
    with claimed_search(resolved_spec(space, size, "cpu")) as claim:
        results, steps = _paired_epochs(work, claim, plan, threads, repeats, seconds, config)
    return _comparison(
        [a for a, _ in results], [b for _, b in results], steps * work.items_per_step, work.unit
    )


def _paired_epochs(
    work: Workload,
    claim: SearchClaim,
    plan: SearchPlan,
    threads: int,
    repeats: int,
    seconds: float,
    config: dict[str, Any],
) -> tuple[list[tuple[tuple[float, float], tuple[float, float]]], int]:
    """The pairs of (in-process, Ray) epochs of `measure_ray_vs_inprocess`, and the steps per epoch."""
    import ray

    from workers.actors import create_actors, kill_actors

    controller, shared = create_actors(plan, claim.search_id)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    config.update(work.config(), actor_torch_threads=threads)
    try:
        got: Any = ray.get(shared.steps_per_epoch.remote())
        steps = int(got)
        config["steps_per_epoch"] = steps

        def local() -> tuple[float, float]:
            return _inprocess_epoch(work)

        def remote() -> tuple[float, float]:
            return _ray_epoch(claim, plan, controller, shared, steps)

        sizing = local()[1] + remote()[1]  # also the warm-up; both sides stay on the same epoch
        pairs = max(repeats, min(MAX_PAIRS, math.floor(seconds / sizing)))
        config["pairs"] = pairs
        results: list[tuple[tuple[float, float], tuple[float, float]]] = []
        for i in range(pairs):
            if i % 2 == 0:
                first = local()
                results.append((first, remote()))
            else:
                second = remote()
                results.append((local(), second))
    finally:
        torch.set_num_threads(saved_threads)
        kill_actors(controller, shared)
    return results, steps


def _comparison(
    local: list[tuple[float, float]], remote: list[tuple[float, float]], items: int, unit: str
) -> dict[str, Any]:
    """Medians of each side, and the median of the pairs' ratios (the figure against the target)."""
    epoch_ratios = [r / max(loc, 1e-9) for (_, loc), (_, r) in zip(local, remote, strict=True)]
    phase_ratios = [r / max(loc, 1e-9) for (loc, _), (r, _) in zip(local, remote, strict=True)]
    epoch_ratio = statistics.median(epoch_ratios)
    return {
        "inprocess_epoch_s": summarize([w for _, w in local]),
        "ray_epoch_s": summarize([w for _, w in remote]),
        "inprocess_shared_phase_s": summarize([p for p, _ in local]),
        "ray_shared_phase_s": summarize([p for p, _ in remote]),
        f"inprocess_shared_{unit}_per_s": items / statistics.median(p for p, _ in local),
        f"ray_shared_{unit}_per_s": items / statistics.median(p for p, _ in remote),
        "paired_ratio_epoch": summarize(epoch_ratios),
        "paired_ratio_epoch_quartiles": statistics.quantiles(epoch_ratios, n=4)
        if len(epoch_ratios) > 1
        else [],
        "ray_over_inprocess_epoch": epoch_ratio,
        "ray_over_inprocess_shared_phase": statistics.median(phase_ratios),
        "ray_overhead_pct_epoch": 100.0 * (epoch_ratio - 1.0),
        "within_10pct": epoch_ratio <= 1.10,
    }


def run_ray(spaces: Sequence[str], size: str, repeats: int) -> None:
    seconds = 0.0 if size == "smoke" else RAY_SECONDS
    for space in spaces:
        config: dict[str, Any] = {
            "path": "ray_vs_inprocess",
            "space": space,
            "size": size,
            "repeats": repeats,
        }
        guarded(
            BENCH,
            f"ray_vs_inprocess/{space}/{size}",
            config,
            functools.partial(measure_ray_vs_inprocess, space, size, repeats, config, seconds),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else BENCH)
    parser.add_argument("--spaces", type=csv_list, default=list(SPACES))
    parser.add_argument("--sizes", type=csv_list, default=["demo", "paper"])
    parser.add_argument("--steps", type=int, default=None, help="architectures per shared phase measured")
    parser.add_argument(
        "--projection",
        choices=("auto", "yes", "no"),
        default="auto",
        help="full-search projection (auto: GPU)",
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 1 paper, 2 demo)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", type=csv_list, default=["fp32"], help="fp32, bf16, cl, bf16-cl")
    parser.add_argument(
        "--no-ray", action="store_true", help="skip the Ray comparison (no Ray on a GPU image)"
    )
    parser.add_argument("--no-inprocess", action="store_true", help="only the Ray comparison")
    parser.add_argument("--ray-size", default="demo", choices=SIZES)
    parser.add_argument("--ray-spaces", type=csv_list, default=None, help="default: --spaces")
    args = parser.parse_args(argv)
    set_output_file(args.out)
    apply_threads(args.threads)
    sizes = ["smoke"] if args.smoke else args.sizes
    repeats = 1 if args.smoke else args.repeats
    if not args.no_inprocess:
        run_inprocess(args, sizes, repeats)
    if not args.no_ray and torch.device(args.device).type == "cpu":
        run_ray(args.ray_spaces or args.spaces, "smoke" if args.smoke else args.ray_size, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
