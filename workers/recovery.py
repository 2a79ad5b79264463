"""Losing the actors of a search (their Ray node died) loses nothing: fresh actors, newest checkpoint.

`run_with_recovery` runs the actor part of a search (``attempt``: create the actors, restore the
newest committed checkpoint, run the remaining epochs, derive). When it fails because an actor or
an object it held is gone (`is_actor_loss`: the actor died, is unreachable, its node died, or a
sampled batch in its node's object store was lost; also an actor that died before it ever ran,
e.g. one placed on a node that was dying), what is left is killed by ``attempt``'s own cleanup,
the loss is logged and published (event ``{"type": "recovery", ...}``), and ``attempt`` runs
again: its fresh actors land on a surviving node and continue from the newest checkpoint whose
epoch the database committed. A half-done epoch is simply redone (its rows and its checkpoint URI
are one transaction, so nothing of it was stored), which gives the rows of an uninterrupted run.

At most ``limit`` recoveries in a row (``ENAS_ACTOR_RECOVERIES``): the count starts again when an
epoch commits between two losses. Past it the search fails with `ActorsLost`, naming the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import ray

from workers.retry import short_error
from workers.search_run import SearchClaim

logger = logging.getLogger(__name__)

T = TypeVar("T")

ACTOR_LOSS = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError...
)
"""Ray's errors that mean "an actor of the search, or its node, is gone"."""


class ActorsLost(RuntimeError):
    """The search's actors were lost more often in a row than ``ENAS_ACTOR_RECOVERIES`` allows."""


def is_actor_loss(error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps: a task's cause, a chained cause) is an actor or
    node loss. A controller call that waited on the shared actor raises a task error whose cause
    is the shared actor's death. An actor whose constructor raised is no loss: it is the search's
    error (fresh actors would fail the same way)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ray.exceptions.RayActorError) and current.actor_init_failed:
            return False  # its constructor raised (e.g. missing data): fresh actors would too
        if isinstance(current, ACTOR_LOSS):
            return True
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return False


def run_with_recovery(claim: SearchClaim, attempt: Callable[[], T], *, limit: int) -> T:
    """``attempt()``, run again after each actor loss (at most ``limit`` losses in a row).

    ``attempt`` must kill its actors on the way out and restore from the search's newest
    committed checkpoint (read from the database) on the way in.
    Raises:
        ActorsLost: more than ``limit`` losses with no epoch committed between them.
    """
    in_a_row, committed = 0, _committed_epoch(claim)
    while True:
        try:
            return attempt()
        except Exception as e:
            if not is_actor_loss(e):
                raise
            now = _committed_epoch(claim)
            if now != committed:
                in_a_row, committed = 0, now  # progress since the last loss
            in_a_row += 1
            reason = short_error(e)
            if in_a_row > limit:
                raise ActorsLost(
                    f"the search's Ray actors were lost {in_a_row} times in a row (their node died "
                    f"or became unreachable; ENAS_ACTOR_RECOVERIES={limit}); last: {reason}"
                ) from e
            logger.warning(
                "search %s: actors lost (node died? %s); recovery %d/%d from epoch %s's checkpoint",
                claim.search_id,
                reason,
                in_a_row,
                limit,
                now,
            )
            claim.publish(
                {"type": "recovery", "attempt": in_a_row, "limit": limit, "epoch": now, "error": reason}
            )


def _committed_epoch(claim: SearchClaim) -> int | None:
    """The search's last committed epoch in the database (None: none yet)."""
    return claim.write("read epoch", lambda: claim.store.get_search(search_id=claim.search_id)).epoch
