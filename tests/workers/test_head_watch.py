"""workers/head_watch.py: a head that stops answering for the grace period is reported once; one
that comes back within it is not."""

from __future__ import annotations

import socket
import threading

from workers.head_watch import HeadWatch


def listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


def test_a_head_gone_for_the_grace_period_is_reported_once() -> None:
    server = listening()
    host, port = server.getsockname()
    reasons: list[str] = []
    reported = threading.Event()

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        reported.set()

    watch = HeadWatch(f"{host}:{port}", 0.6, on_lost, interval_s=0.1)
    watch.start()
    assert not reported.wait(0.8)  # it answers: nothing reported
    server.close()
    assert reported.wait(5)
    watch.stop()
    assert len(reasons) == 1 and f"{host}:{port} did not answer" in reasons[0]


def test_a_head_back_within_the_grace_period_is_not_reported() -> None:
    server = listening()
    host, port = server.getsockname()
    reported = threading.Event()
    watch = HeadWatch(f"{host}:{port}", 1.5, lambda _: reported.set(), interval_s=0.1)
    watch.start()
    server.close()
    threading.Event().wait(0.5)
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind((host, port))
    again.listen(16)
    assert not reported.wait(2.0)
    watch.stop()
    again.close()
