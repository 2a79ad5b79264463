#!/usr/bin/env bash
# GPU benchmarks of issue 6 in one call on a CUDA machine (repository root; torch, numpy and
# scikit-learn present; nothing installed, no network, no Ray, no database: enas_core directly).
#
#   OUT=/some/folder bash bench/gpu.sh        # default OUT: .enas/bench-gpu
#
# Writes under $OUT: shared_train.jsonl, static_child.jsonl, controller.jsonl (one JSON object per
# line, see bench/README.md), gpu.log (stderr, tracebacks), env.txt (nvidia-smi, torch), summary.txt
# (also printed last). Each step has its own time limit so a slow compile cannot eat the others;
# what a step printed before its limit stays in its file. Caps add up to 9 minutes.
# Environment: PYTHON (default python3), STEPS (shared-phase steps per measurement, default 30);
# for a dry run of this script without a GPU: DEVICE=cpu SIZES=smoke STEPS=2 COMPILE=no.
set -uo pipefail

OUT="${OUT:-.enas/bench-gpu}"
PY="${PYTHON:-python3}"
STEPS="${STEPS:-30}"
DEVICE="${DEVICE:-cuda}"
SIZES="${SIZES:-paper}"
COMPILE="${COMPILE:-yes}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/gpu.log"

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  uptime
} >"$OUT/env.txt" 2>&1
[ "$DEVICE" != cuda ] || "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
  echo "no CUDA device visible to $PY" | tee -a "$LOG"
  exit 1
}

# step NAME SECONDS MODULE ARGS...: run one benchmark under a time limit, JSON lines to $OUT/NAME.jsonl.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name ($limit s): $*" >>"$LOG"
  timeout --signal=INT --kill-after=20 "$limit" "$PY" -m "$@" --out "$OUT/$name.jsonl" >/dev/null 2>>"$LOG"
  local rc=$?
  [ $rc -eq 0 ] || echo "== $name: exit $rc" | tee -a "$LOG"
}

# 1. The shared phase, in-process, paper configs (micro first: the target), with the projection of
#    the whole search; then the speed options on micro.
step shared_train 100 bench.shared_train --device "$DEVICE" --no-ray --sizes "$SIZES" --steps "$STEPS" --repeats 3
step shared_train 70 bench.shared_train --device "$DEVICE" --no-ray --sizes "$SIZES" --spaces micro \
  --variants bf16,cl,bf16-cl --steps "$STEPS" --repeats 3
# 2. Static children of the same sampled architectures, eager and compiled, side by side with the
#    shared model (one architecture each: compiling takes a minute or two); path-only memory.
step static_child 150 bench.static_child --device "$DEVICE" --sizes "$SIZES" --spaces micro --archs 1 \
  --steps "$STEPS" --repeats 3 --compile "$COMPILE"
step static_child 120 bench.static_child --device "$DEVICE" --sizes "$SIZES" --spaces macro,rnn --archs 1 \
  --steps "$STEPS" --repeats 3 --compile "$COMPILE"
step static_child 50 bench.static_child --device "$DEVICE" --sizes "$SIZES" --memory-only --steps 10
# 3. The controller: on the GPU, and on this machine's CPU (where the actors run it).
step controller 25 bench.controller --device "$DEVICE" --size paper --repeats 3 --budget 100
step controller 25 bench.controller --device cpu --size paper --repeats 3 --budget 100

"$PY" -m bench.summary "$OUT"/*.jsonl | tee "$OUT/summary.txt"
