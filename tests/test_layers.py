"""The import rules of DESIGN.md section 1 (service never imports torch, ray or workers; the core's
spaces/genotype modules are stdlib-only), checked by the shared tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT.parent / "shared" / "tools" / "check_layers.py"


def test_layer_rules_hold() -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL), str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
