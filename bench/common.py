"""What every benchmark shares: the machine's description, JSON output, statistics, memory readings.

Standard library only (``bench.service`` must not pull torch). Each benchmark prints one JSON object
per result line::

    {"bench": "shared_train", "name": "...", "date": "...", "machine": {...}, "load": {...},
     "device": "cpu", "torch": "2.13.0+cpu", "config": {...}, "numbers": {...}}

A measurement that fails prints the same object with ``"error": "Type: message"`` instead of
``numbers``, and the script goes on with the next one (a GPU run must not lose its other results).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

_OUT_FILE: Path | None = None


# --- the machine ----------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), memory, Python, OS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    total_kb = _meminfo_kb("MemTotal")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(total_kb / 2**20, 1) if total_kb else None,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def load() -> dict[str, Any]:
    """The machine's load averages now (what ``uptime`` prints), taken next to every figure."""
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


def uptime_text() -> str:
    """``uptime``'s line (empty when the command is missing)."""
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def package_version(name: str) -> str | None:
    """The installed version of a distribution, without importing it (None when absent)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def torch_version() -> str | None:
    """torch's version: the imported module's when loaded (a CUDA image may ship no metadata)."""
    module = sys.modules.get("torch")
    return str(module.__version__) if module is not None else package_version("torch")


# --- output ---------------------------------------------------------------------------------------
def set_output_file(path: str | Path | None) -> None:
    """Also append every emitted line to ``path`` (JSON lines)."""
    global _OUT_FILE
    _OUT_FILE = Path(path) if path else None
    if _OUT_FILE is not None:
        _OUT_FILE.parent.mkdir(parents=True, exist_ok=True)


def record(
    bench: str,
    name: str,
    config: Mapping[str, Any],
    numbers: Mapping[str, Any] | None = None,
    *,
    device: str = "cpu",
    error: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One result line (not printed: see `emit`)."""
    line: dict[str, Any] = {
        "bench": bench,
        "name": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load": load(),
        "device": device,
        "torch": torch_version(),
        "config": dict(config),
    }
    if error is not None:
        line["error"] = error
    else:
        line["numbers"] = dict(numbers or {})
    if extra:
        line.update(extra)
    return line


def emit(line: Mapping[str, Any]) -> None:
    """Print one JSON line (non-finite floats as null) and append it to the output file, if any."""
    text = json.dumps(clean(line), sort_keys=False)
    print(text, flush=True)
    if _OUT_FILE is not None:
        with _OUT_FILE.open("a") as f:
            f.write(text + "\n")


def clean(value: Any) -> Any:
    """A copy of ``value`` that strict JSON accepts (NaN and infinities become None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def describe_error(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (the traceback goes to stderr)."""
    traceback.print_exception(exc, file=sys.stderr)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:1000]


def guarded(
    bench: str,
    name: str,
    config: Mapping[str, Any],
    measure: Callable[[], Mapping[str, Any]],
    *,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run ``measure`` and emit its numbers, or its error; returns the emitted line."""
    try:
        line = record(bench, name, config, measure(), device=device)
    except Exception as e:  # noqa: BLE001 - a failed measurement is a result too; the run goes on
        line = record(bench, name, config, device=device, error=describe_error(e))
    emit(line)
    return line


# --- statistics -----------------------------------------------------------------------------------
def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and spread ((max - min) / median) of repeated measurements."""
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0}
    median = statistics.median(vals)
    spread = (max(vals) - min(vals)) / median if median else None
    return {
        "median": median,
        "min": min(vals),
        "max": max(vals),
        "spread": spread,
        "n": len(vals),
        "values": vals,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50 / p90 / p99 / max in milliseconds, and the count."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
    }


@contextmanager
def stopwatch(sync: Callable[[], None] | None = None) -> Iterator[list[float]]:
    """``with stopwatch(sync) as t: ...`` then ``t[0]`` is the seconds taken; ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before both clock reads so queued device work is counted."""
    box: list[float] = []
    if sync is not None:
        sync()
    start = time.perf_counter()
    try:
        yield box
    finally:
        if sync is not None:
            sync()
        box.append(time.perf_counter() - start)


# --- memory (Linux) -------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mib() -> float | None:
    """This process's resident memory now, MiB."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (since start or the last `reset_peak_rss`), MiB."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs`` 5); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- command line ---------------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark takes: --smoke, --repeats, --out."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: checks the script runs")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure (median reported)")
    parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser


def apply_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` when positive. On a loaded 2-core machine two OpenMP
    threads per process can make tiny ops (the controller's) ten times slower than one."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def csv_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (argparse type)."""
    return [part.strip() for part in text.split(",") if part.strip()]
