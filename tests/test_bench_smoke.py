"""Each benchmark runs at a tiny size (``--smoke``) and prints valid JSON result lines.

No timing is asserted (speed is measured in ``bench/``, never by a test): a line must parse, carry
the machine, the config and numbers, and no measurement may have failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("bench", "name", "date", "machine", "load", "device", "config")


def run_bench(module: str, *args: str, timeout: int = 600) -> list[dict[str, Any]]:
    """Run ``python -m bench.<module> --smoke ARGS`` in the repository; its JSON lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--smoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"bench.{module} printed nothing; stderr: {result.stderr[-2000:]}"
    for line in lines:
        missing = [key for key in REQUIRED if key not in line]
        assert not missing, f"{line.get('name')}: missing {missing}"
        assert "error" not in line, f"{line['name']}: {line['error']}"
        assert isinstance(line["numbers"], dict) and line["numbers"], line["name"]
        assert line["machine"]["cores"] >= 1
    return lines


def names(lines: list[dict[str, Any]]) -> set[str]:
    return {line["name"] for line in lines}


def test_shared_train_smoke() -> None:
    lines = run_bench("shared_train", "--ray-spaces", "micro")
    assert {"inprocess/micro/smoke", "inprocess/macro/smoke", "inprocess/rnn/smoke"} <= names(lines)
    ray = next(line for line in lines if line["name"] == "ray_vs_inprocess/micro/smoke")
    assert {"inprocess_epoch_s", "ray_epoch_s", "ray_overhead_pct_epoch"} <= set(ray["numbers"])
    rnn = next(line for line in lines if line["name"] == "inprocess/rnn/smoke")
    assert "tokens_per_s" in rnn["numbers"]


def test_static_child_smoke() -> None:
    lines = run_bench("static_child", "--compile", "no", "--memory")
    assert {"side_by_side/micro/smoke", "side_by_side/macro/smoke", "side_by_side/rnn/smoke"} <= names(lines)
    memory = next(line for line in lines if line["name"] == "memory/micro/smoke")
    assert memory["numbers"]["shared"]["training_mib"] >= 0
    side = next(line for line in lines if line["name"] == "side_by_side/micro/smoke")
    assert side["numbers"]["shared_over_eager"] > 0


def test_controller_smoke() -> None:
    lines = run_bench("controller")
    assert {
        f"{kind}/{space}/paper" for kind in ("sample", "update") for space in ("micro", "macro", "rnn")
    } <= names(lines)


def test_service_smoke() -> None:
    lines = run_bench("service", "--backends", "sqlite")
    assert {"api", "open_loop", "store/sqlite"} <= names(lines)
    store = next(line for line in lines if line["name"] == "store/sqlite")
    assert store["numbers"]["rows_per_epoch"] == 581


def test_summary_reads_lines(tmp_path: Path) -> None:
    line = {"bench": "x", "name": "y", "load": {"load_1m": 0.5}, "device": "cpu"}
    line["numbers"] = {"images_per_s": {"median": 10.0, "spread": 0.1}}
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(line) + "\nnot json\n")
    cmd = [sys.executable, "-m", "bench.summary", str(path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert "x/y [cpu, load 0.5]: img/s 10 +-5%" in out.stdout
