#!/usr/bin/env bash
# ray-node: run a Ray worker node of the cluster at $ENAS_RAY_HEAD (host:port) in the foreground,
# offering this container's CPUs and GPUs for the search actors and retraining tasks, plus the
# custom resources in $ENAS_WORKER_RESOURCES: a JSON object of Ray resource name -> positive amount,
# e.g. '{"node_a": 1}', which a spec's resources.shared / controller / retrain can ask for
# (docs/INTERNALS.md, "Cluster"). RAY_AUTH_MODE / RAY_AUTH_TOKEN must match the head's.
# Exits 2 naming the variable when ENAS_WORKER_RESOURCES is not such an object.
set -euo pipefail
: "${ENAS_RAY_HEAD:?set ENAS_RAY_HEAD=host:port of the Ray head}"
resources=${ENAS_WORKER_RESOURCES:-}
resources=${resources:-"{}"}
python3 - "$resources" <<'EOF' || exit 2
import json, math, re, sys
try:
    value = json.loads(sys.argv[1])
except ValueError as e:
    sys.exit(f"ray-node: ENAS_WORKER_RESOURCES is not JSON ({e}): {sys.argv[1]!r}")
if not isinstance(value, dict):
    sys.exit(f"ray-node: ENAS_WORKER_RESOURCES must be a JSON object, got {sys.argv[1]!r}")
for name, amount in value.items():
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", name) or name in ("CPU", "GPU", "memory"):
        sys.exit(f"ray-node: ENAS_WORKER_RESOURCES: {name!r} is not a custom Ray resource name")
    ok = isinstance(amount, (int, float)) and not isinstance(amount, bool)
    if not ok or not math.isfinite(amount) or amount <= 0:
        sys.exit(f"ray-node: ENAS_WORKER_RESOURCES[{name!r}] must be a positive number, got {amount!r}")
EOF
exec ray start --address="$ENAS_RAY_HEAD" --resources="$resources" --block
