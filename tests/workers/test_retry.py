"""Retrying with backoff while the database or Redis is unreachable (no services needed)."""

from __future__ import annotations

import pytest
import redis

from service.errors import Unavailable
from workers.retry import Backoff, retry_transient


def test_retry_transient_backs_off_then_succeeds() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise Unavailable("database unreachable") if len(calls) % 2 else redis.ConnectionError("down")
        return "ok"

    assert retry_transient(flaky, what="test", check=lambda: None, maximum=1.0, sleep=waits.append) == "ok"
    assert len(calls) == 4 and len(waits) == 3 and all(0 < w <= 1.0 for w in waits)

    def stopping() -> None:
        raise RuntimeError("worker stopping")

    with pytest.raises(RuntimeError, match="stopping"):
        retry_transient(lambda: flaky_forever(), what="test", check=stopping, sleep=waits.append)
    with pytest.raises(ValueError):  # not transient: no retry
        retry_transient(lambda: int("x"), what="test", check=lambda: None)


def flaky_forever() -> None:
    raise Unavailable("still down")


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=4.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1]) and all(2.0 <= d <= 4.0 for d in delays[3:])
    backoff.reset()
    assert backoff.next_delay() <= 1.0
