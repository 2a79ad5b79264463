"""Waiting on Ray results while watching for a cancel or a stop: `get_checked`.

A phase of a search can be one long Ray call (the controller phase is one `train_policy` call; a
large `derive.num_samples` is one `rewards` call). The driver never blocks in a bare ``ray.get``:
it waits in steps of `POLL_S` and runs the search's ``check`` between them, which raises
`SearchCancelled` / `SearchInterrupted`; the runner then kills the actors (its ``finally``), which
stops the call on the actor's side too. So a cancel frees the search's workers within about
`POLL_S` plus the time Ray takes to kill an actor, in any phase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

POLL_S = 0.5


def get_checked(refs: Any, check: Callable[[], None] | None, *, poll_s: float = POLL_S) -> Any:
    """``ray.get(refs)`` (one ObjectRef or a list of them), calling ``check`` every ``poll_s``
    seconds while any of them is unfinished; ``check`` raising ends the wait with its error
    (the calls go on until their actors are killed or the tasks cancelled by the caller)."""
    if check is None:
        return ray.get(refs)
    pending = list(refs) if isinstance(refs, list) else [refs]
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
        if pending:
            check()
    return ray.get(refs)
