"""Retrying a call while the database or Redis is unreachable: `retry_transient` with `Backoff`.

Used by the runner (store writes), the retrain job and the worker's loop; `TRANSIENT` names the
errors that mean "unreachable for now".
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from service.errors import Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = (Unavailable, redis.ConnectionError, redis.TimeoutError)
"""Errors that mean "the database or Redis is unreachable for now": retried with backoff."""


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial * factor**n`` capped at ``maximum`` seconds."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """The next wait (half to all of the nominal delay, so workers do not retry in step)."""
        delay = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0


def retry_transient(
    call: Callable[[], T],
    *,
    what: str,
    check: Callable[[], None],
    maximum: float = 30.0,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Run ``call`` until it does not raise a `TRANSIENT` error, waiting with `Backoff` between tries.

    ``check`` runs before every retry and raises to give up (worker stopping, lease lost). Each
    failure is logged with the wait that follows.
    """
    backoff = Backoff(maximum=maximum)
    while True:
        try:
            return call()
        except TRANSIENT as e:
            delay = backoff.next_delay()
            logger.warning("%s failed (%s); retry %d in %.1fs", what, short_error(e), backoff.attempts, delay)
            check()
            sleep(delay)
            check()


def short_error(error: BaseException) -> str:
    """``"Type: first line of the message"``, at most 300 characters (for log lines)."""
    text = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]
