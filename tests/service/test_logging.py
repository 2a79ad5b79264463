"""Structured JSON logs (`service.logging`): one object per line, the search id on every line
logged for a search, in threads that copy the context and in HTTP requests about a search."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from service.logging import SearchLogContext, bind_search, configure_logging, current_search_id
from service.settings import Settings


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines to a buffer; the previous handlers come back after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(Settings(log_level="DEBUG"), stream=stream)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_bound_search_id(lines: io.StringIO) -> None:
    log = logging.getLogger("workers.runner")
    log.info("before")
    with bind_search(7):
        log.info("epoch %d/%d", 1, 8, extra={"worker_id": "w1"})
        with bind_search(9):
            log.debug("nested")
        log.warning("multi\nline")
    log.info("explicit", extra={"search_id": 3})
    out = records(lines)
    assert [r["message"] for r in out] == ["before", "epoch 1/8", "nested", "multi\nline", "explicit"]
    assert [r.get("search_id") for r in out] == [None, 7, 9, 7, 3]
    assert out[1]["worker_id"] == "w1" and out[1]["logger"] == "workers.runner" and out[1]["level"] == "INFO"
    assert out[0]["ts"].endswith("Z") and "T" in out[0]["ts"]


def test_exceptions_and_copied_contexts(lines: io.StringIO) -> None:
    log = logging.getLogger("x")
    with bind_search(5):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(log.error, "in a thread"))
    worker.start()
    worker.join()
    first, second = records(lines)
    assert first["search_id"] == 5 and "ValueError: boom" in first["exc"]
    assert second == {**second, "message": "in a thread", "search_id": 5}


def test_text_format_and_bad_format() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging(level="info", fmt="text", stream=stream)
        handler = configure_logging(level="info", fmt="text", stream=stream)  # replaces, not adds
        assert [h for h in root.handlers if h.formatter.__class__.__name__ == "TextFormatter"] == [handler]
        with bind_search(4):
            logging.getLogger("y").info("hello")
        assert stream.getvalue().rstrip().endswith("INFO y [search 4]: hello")
        with pytest.raises(ValueError, match="log format"):
            configure_logging(fmt="xml")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/searches/12/events", 12), ("/ui/searches/3", 3), ("/searches", None), ("/architectures/4", None)],
)
def test_middleware_binds_the_search_of_the_path(path: str, expected: int | None) -> None:
    seen: list[int | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(current_search_id())

    asyncio.run(SearchLogContext(app)({"type": "http", "path": path}, None, None))
    assert seen == [expected] and current_search_id() is None
