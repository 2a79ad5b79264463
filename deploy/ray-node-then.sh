#!/usr/bin/env bash
# ray-node-then CMD...: join the Ray cluster at $ENAS_RAY_HEAD (host:port) as a node offering no
# resources for tasks, wait until joined, then exec CMD (e.g. `enasctl worker` with
# ENAS_RAY_ADDRESS=auto, which then attaches to this local node). RAY_AUTH_MODE / RAY_AUTH_TOKEN
# from the environment must match the head's. Exits non-zero when the head cannot be joined.
set -euo pipefail
: "${ENAS_RAY_HEAD:?set ENAS_RAY_HEAD=host:port of the Ray head}"
for i in $(seq 30); do
  ray start --address="$ENAS_RAY_HEAD" --num-cpus=0 --num-gpus=0 --resources='{}' && break
  [ "$i" = 30 ] && { echo "ray-node-then: cannot join the Ray head at $ENAS_RAY_HEAD" >&2; exit 1; }
  sleep 2
done
for _ in $(seq 30); do
  ray status --address="$ENAS_RAY_HEAD" >/dev/null 2>&1 && exec "$@"
  sleep 1
done
echo "ray-node-then: joined $ENAS_RAY_HEAD but the node never became ready" >&2
exit 1
