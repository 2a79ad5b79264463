"""A compact table of benchmark JSON lines (medians, spreads, loads): ``python -m bench.summary FILE...``.

Reads the lines the benchmarks print (files, or stdin when none is given) and prints one row per
result with its headline numbers; the full lines stay the record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

# (number key, label) pairs shown when present; medians of summaries, "spread" as +-%.
HEADLINES = (
    ("images_per_s", "img/s"),
    ("tokens_per_s", "tok/s"),
    ("phase_images_per_s", "phase img/s"),
    ("phase_tokens_per_s", "phase tok/s"),
    ("peak_above_base_mib", "peak+MiB"),
    ("projected_shared_phase_s_per_epoch", "shared s/epoch"),
    ("projected_controller_phase_s_per_epoch", "controller s/epoch"),
    ("projected_search_hours", "search h"),
    ("shared_images_per_s", "shared img/s"),
    ("eager_images_per_s", "eager img/s"),
    ("compiled_images_per_s", "compiled img/s"),
    ("shared_tokens_per_s", "shared tok/s"),
    ("eager_tokens_per_s", "eager tok/s"),
    ("compiled_tokens_per_s", "compiled tok/s"),
    ("shared_over_eager", "shared/eager"),
    ("shared_over_compiled", "shared/compiled"),
    ("shared_over_static_total", "mem shared/static"),
    ("archs_per_s_n1", "archs/s n=1"),
    ("archs_per_s_n10", "archs/s n=10"),
    ("archs_per_s_n100", "archs/s n=100"),
    ("ms_per_update", "ms/update"),
    ("inprocess_epoch_s", "in-process s/epoch"),
    ("ray_epoch_s", "Ray s/epoch"),
    ("ray_overhead_pct_epoch", "Ray overhead %"),
    ("submit_p50_ms", "submit p50 ms"),
    ("submit_p99_ms", "submit p99 ms"),
    ("status_p50_ms", "status p50 ms"),
    ("status_p99_ms", "status p99 ms"),
    ("achieved_rate", "achieved req/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("rows_per_s", "rows/s"),
)


def read_lines(sources: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of the given files (stdin when empty); other lines are skipped."""
    texts = [Path(s).read_text() for s in sources] or [sys.stdin.read()]
    for text in texts:
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def headline(value: Any) -> str:
    """A number, or a summary's median with its spread (+-half the range, % of the median)."""
    if isinstance(value, Mapping) and "median" in value:
        spread = value.get("spread")
        text = _num(value["median"])
        return text if not spread else f"{text} +-{50 * spread:.0f}%"
    return _num(value)


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def row(line: Mapping[str, Any]) -> str:
    """``name [device, load]: label value, ...`` for one result line."""
    where = f"{line.get('device')}, load {line.get('load', {}).get('load_1m')}"
    if "error" in line:
        return f"{line.get('bench')}/{line.get('name')} [{where}]: ERROR {line['error']}"
    numbers = line.get("numbers", {})
    shown = [f"{label} {headline(numbers[key])}" for key, label in HEADLINES if key in numbers]
    return f"{line.get('bench')}/{line.get('name')} [{where}]: " + "; ".join(shown)


def main(argv: list[str] | None = None) -> int:
    for line in read_lines(sys.argv[1:] if argv is None else argv):
        print(row(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
