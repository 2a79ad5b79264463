"""The bound the shared model is held against: the same sampled architectures as static children.

For each space and size, ``--archs`` architectures are sampled from the controller; each is trained
for ``--steps`` minibatches three ways, side by side in one process and alternating per repeat:

* ``shared``: the shared trainer on that architecture (``train([arch] * steps)``);
* ``eager``: its search-layout static child (``MicroChild.from_shared`` / ``MacroChild.from_shared``
  / ``RnnChild.from_shared``: the same computation, only the path's weights) trained with the same
  recipe (augmentation, loss, L2, clipping, SGD);
* ``compiled``: the same child's forward under ``torch.compile`` (``--compile-mode``); a compile
  failure is recorded in the line, the rest still runs.

The line reports images/s (tokens/s) of each and the ratios shared/eager and shared/compiled.

``--memory`` adds the path-only memory check: two fresh subprocesses, one training the shared model
on ``--steps`` sampled architectures, one training the static child of the first of them; each
reports its peak (CUDA max allocated, or peak RSS) above its resident memory before training, and
the weights' size; the line gives the ratio shared/static.

Usage: ``python -m bench.static_child [--spaces ...] [--sizes ...] [--device cuda] [--memory]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from bench.common import (
    apply_threads,
    base_parser,
    csv_list,
    describe_error,
    guarded,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    set_output_file,
    summarize,
)
from bench.workloads import (
    SPACES,
    Workload,
    child_trainer,
    device_name,
    free,
    prepare,
    steps_seconds,
    warm_up,
)

BENCH = "static_child"
DEFAULT_STEPS = {"paper": 3, "demo": 10, "smoke": 2}


# --- side by side -------------------------------------------------------------------------------
def compile_wanted(choice: str, device: str, size: str) -> bool:
    """``auto``: compile except at the paper's size on a CPU (minutes of inductor on 2 cores)."""
    if choice == "auto":
        return not (torch.device(device).type == "cpu" and size == "paper")
    return choice == "yes"


def make_trainers(work: Workload, arch: list[int], compile_mode: str | None) -> dict[str, Any]:
    """The eager child trainer and, when asked, the compiled one (first step = compile, timed)."""
    made: dict[str, Any] = {"eager": child_trainer(work, arch)}
    made["eager"].step()  # warm-up
    if compile_mode is None:
        return made
    try:
        compiled = child_trainer(work, arch, compile_mode)
        began = time.perf_counter()
        compiled.step()
        compiled.step()
        if work.sync is not None:
            work.sync()
        made["compile_s"] = time.perf_counter() - began
        made["compiled"] = compiled
    except Exception as e:  # noqa: BLE001 - recorded in the line: compile is optional on a CPU
        made["compile_error"] = describe_error(e)
    return made


def time_arch(work: Workload, arch: list[int], made: dict[str, Any], steps: int) -> dict[str, float]:
    """One repeat: items/s of the shared trainer, the eager child and the compiled child on ``arch``."""
    items = steps * work.items_per_step
    rates = {"shared": items / _shared_seconds(work, arch, steps)}
    for kind in ("eager", "compiled"):
        if kind in made:
            rates[kind] = items / steps_seconds(made[kind].run, steps, work.sync)
    return rates


def _shared_seconds(work: Workload, arch: list[int], steps: int) -> float:
    sync = work.sync
    if sync is not None:
        sync()
    began = time.perf_counter()
    work.shared.train([list(arch)] * steps, 0)
    if sync is not None:
        sync()
    return time.perf_counter() - began


def side_by_side(
    work: Workload, archs: int, steps: int, repeats: int, compile_mode: str | None
) -> dict[str, Any]:
    """Alternate shared / eager / compiled per architecture and repeat; medians and ratios."""
    warm_up(work)
    sampled = work.sample(archs)
    trainers = [make_trainers(work, arch, compile_mode) for arch in sampled]
    rates: dict[str, list[float]] = {"shared": [], "eager": [], "compiled": []}
    per_arch: list[dict[str, Any]] = []
    for i, arch in enumerate(sampled):
        got = [time_arch(work, arch, trainers[i], steps) for _ in range(repeats)]
        row: dict[str, Any] = {"tokens": arch}
        for kind in rates:
            values = [g[kind] for g in got if kind in g]
            rates[kind].extend(values)
            if values:
                row[f"{kind}_{work.unit}_per_s"] = statistics.median(values)
        row.update({k: v for k, v in trainers[i].items() if k in ("compile_s", "compile_error")})
        per_arch.append(row)
    return _ratios(rates, per_arch, work.unit, steps)


def _ratios(
    rates: dict[str, list[float]], per_arch: list[dict[str, Any]], unit: str, steps: int
) -> dict[str, Any]:
    numbers: dict[str, Any] = {"steps": steps, "per_arch": per_arch}
    for kind, values in rates.items():
        if values:
            numbers[f"{kind}_{unit}_per_s"] = summarize(values)
    shared = statistics.median(rates["shared"])
    for kind in ("eager", "compiled"):
        if rates[kind]:
            numbers[f"shared_over_{kind}"] = shared / statistics.median(rates[kind])
    errors = [row["compile_error"] for row in per_arch if "compile_error" in row]
    if errors:
        numbers["compile_error"] = errors[0]
    return numbers


def side_by_side_one(args: Any, space: str, size: str, variant: str, repeats: int) -> None:
    """Measure and emit one side-by-side line."""
    wanted = compile_wanted(args.compile, args.device, size) and space in args.compile_spaces
    compile_mode = args.compile_mode if wanted else None
    steps = args.steps or DEFAULT_STEPS[size]
    config: dict[str, Any] = {"space": space, "size": size, "variant": variant, "repeats": repeats}
    config.update(archs=args.archs, compile_mode=compile_mode)

    def measure() -> dict[str, Any]:
        work = prepare(space, size, args.device, variant=variant)
        config.update(work.config())
        return side_by_side(work, args.archs, steps, repeats, compile_mode)

    name = f"side_by_side/{space}/{size}" + ("" if variant == "fp32" else f"/{variant}")
    guarded(BENCH, name, config, measure, device=device_name(args.device))
    free()
    torch._dynamo.reset()


def run_side_by_side(args: Any, sizes: Sequence[str], repeats: int) -> None:
    for size in sizes:
        for space in args.spaces:
            for variant in args.variants:
                if space != "rnn" or variant == "fp32":
                    side_by_side_one(args, space, size, variant, repeats)


# --- memory: one subprocess per probe -------------------------------------------------------------
def _memory_base(device: str) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    reset_peak_rss()
    return rss_mib() or 0.0


def _memory_peak(device: str) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib() or 0.0


def probe(kind: str, space: str, size: str, device: str, steps: int) -> dict[str, Any]:
    """In this (fresh) process: peak memory of ``steps`` training steps of the shared model
    (``kind`` "shared", one sampled architecture per step) or of the first one's static child."""
    work = prepare(space, size, device)
    archs = work.sample(steps)
    if kind == "shared":
        module = work.model()
        step_fn = None
    else:
        trainer = child_trainer(work, archs[0])
        module, step_fn = trainer.child, trainer.run
        work.shared = None  # type: ignore[assignment]  # only the child stays
        free()
    weights = sum(p.numel() * p.element_size() for p in module.parameters()) / 2**20
    base = _memory_base(device)
    if step_fn is None:
        for arch in archs:
            work.shared.train([arch], 0)
    else:
        step_fn(steps)
    peak = _memory_peak(device)
    return {
        "kind": kind,
        "weights_mib": weights,
        "base_mib": base,
        "peak_mib": peak,
        "training_mib": peak - base,
    }


def run_probe(kind: str, space: str, size: str, device: str, steps: int) -> dict[str, Any]:
    """``probe`` in a fresh interpreter (so one probe's freed memory cannot hide the other's)."""
    cmd = [sys.executable, "-m", "bench.static_child", "--probe", kind, "--spaces", space]
    cmd += ["--sizes", size, "--device", device, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"probe {kind} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory_check(space: str, size: str, device: str, steps: int) -> dict[str, Any]:
    shared = run_probe("shared", space, size, device, steps)
    static = run_probe("static", space, size, device, steps)
    total_shared = shared["training_mib"] + shared["weights_mib"]
    total_static = static["training_mib"] + static["weights_mib"]
    return {
        "memory_kind": "cuda_max_memory_allocated" if torch.device(device).type == "cuda" else "peak_rss",
        "shared": shared,
        "static": static,
        "shared_over_static_training": shared["training_mib"] / max(static["training_mib"], 1e-9),
        "shared_over_static_total": total_shared / max(total_static, 1e-9),
        "within_2x": total_shared <= 2.0 * total_static,
    }


def run_memory(args: Any, sizes: Sequence[str]) -> None:
    for size in sizes:
        for space in args.memory_spaces:
            steps = args.steps or DEFAULT_STEPS[size]
            config = {"space": space, "size": size, "steps": steps, "probes": "one subprocess each"}
            guarded(
                BENCH,
                f"memory/{space}/{size}",
                config,
                functools.partial(memory_check, space, size, args.device, steps),
                device=device_name(args.device),
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else BENCH)
    parser.add_argument("--spaces", type=csv_list, default=list(SPACES))
    parser.add_argument("--sizes", type=csv_list, default=["demo", "paper"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--archs", type=int, default=2, help="sampled architectures per space")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", type=csv_list, default=["fp32"], help="fp32, bf16, cl, bf16-cl")
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--compile-spaces", type=csv_list, default=list(SPACES))
    parser.add_argument(
        "--compile-mode", default="default", help="torch.compile mode (default, reduce-overhead...)"
    )
    parser.add_argument("--memory", action="store_true", help="also the path-only memory check")
    parser.add_argument("--memory-spaces", type=csv_list, default=["micro"])
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--probe", choices=("shared", "static"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    set_output_file(args.out)
    apply_threads(args.threads)
    sizes = ["smoke"] if args.smoke else args.sizes
    if args.probe:
        size = sizes[0]
        print(
            json.dumps(
                probe(args.probe, args.spaces[0], size, args.device, args.steps or DEFAULT_STEPS[size])
            )
        )
        return 0
    repeats = 1 if args.smoke else args.repeats
    if not args.memory_only:
        run_side_by_side(args, sizes, repeats)
    if args.memory or args.memory_only:
        run_memory(args, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
