"""The web page's files and the Server-Sent Events stream, over real HTTP (uvicorn in a thread,
SQLite in a temp folder, the embedded Redis)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.queue import Queue
from service.settings import Settings
from tests.service.conftest import Api as BaseApi

WEB = Path(__file__).resolve().parents[2] / "service" / "api" / "web"


class Api(BaseApi):
    """The running API, plus a helper that makes searches in a given state."""

    def search(self, status: str = "queued") -> int:
        """A new search in ``status`` (queued, running or cancelled)."""
        search_id = self.http.post("/searches", json={"space": "micro", "epochs": 3}).json()["id"]
        if status == "running":
            self.store.mark_running(search_id=search_id)
        elif status == "cancelled":
            self.store.request_cancel(search_id=search_id)
        return search_id


@pytest.fixture(scope="module")
def api(embedded_home: Path, serve: Any) -> Iterator[Api]:
    settings = Settings(home=embedded_home, data_dir=embedded_home / "data")
    app = create_app(settings, queue_prefix=f"page{uuid.uuid4().hex[:8]}")
    with serve(app) as server:
        client = Api(server)
        client.http.get("/readyz")  # connects Redis
        yield client
        client.http.close()


def sse_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The messages of an SSE response: ``{"event", "id", "retry", "data"}`` or ``{"comment"}``."""
    message: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(": ")
            message[field] = json.loads(value) if field == "data" else value
    if message:
        yield message


def hub(api: Api) -> Any:
    """The app's followers of event streams (`service.api.followers.Hub`)."""
    return api.server.app.state.hub


def wait_for(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def publish_later(queue: Queue, search_id: int, events: list[dict[str, Any]], delay: float = 0.3) -> None:
    def run() -> None:
        for event in events:
            time.sleep(delay)
            queue.events.publish(search_id, event)

    threading.Thread(target=run, daemon=True).start()


# -- the page ----------------------------------------------------------------------------------------


def test_pages_and_their_static_files(api: Api) -> None:
    for path in ("/", "/ui/searches/1"):
        page = api.http.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'src="/ui/static/app.js"' in page.text and 'id="app"' in page.text
    for name in sorted(p.name for p in WEB.iterdir() if p.suffix in (".js", ".css")):
        response = api.http.get(f"/ui/static/{name}")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), name
        assert response.text == (WEB / name).read_text()
    for bad in ("nope.js", "index.html", "..%2Fapi%2Fapp.py", ".hidden.js", "App.js"):
        response = api.http.get(f"/ui/static/{bad}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", bad


def test_every_module_the_page_imports_is_served(api: Api) -> None:
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        seen.add(name)
        text = api.http.get(f"/ui/static/{name}").text
        for line in text.splitlines():
            if line.startswith("import ") and ' from "./' in line:
                todo.append(line.split('from "./', 1)[1].split('"', 1)[0])
    assert {"app.js", "api.js", "search.js", "list.js", "charts.js", "archs.js"} <= seen


# -- the event stream ----------------------------------------------------------------------------


def test_stream_replays_then_follows_until_finished(api: Api) -> None:
    sid = api.search("running")
    api.queue.events.publish(sid, {"type": "status", "status": "running", "worker": "w"})
    epochs = [{"type": "epoch", "epoch": e, "total": 3, "metrics": {"reward": e / 10}} for e in range(3)]
    later = [*epochs, {"type": "finished", "status": "succeeded", "error": None}]
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        messages = sse_messages(response)
        first = next(messages)
        assert (first["event"], first["id"], first["retry"]) == ("status", "1", "3000")
        assert first["data"]["worker"] == "w"
        publish_later(api.queue, sid, later)
        rest = [m for m in messages if "comment" not in m]
    assert [m["event"] for m in rest] == ["epoch", "epoch", "epoch", "finished"]
    assert [m["data"]["epoch"] for m in rest[:3]] == [0, 1, 2]
    assert [m["id"] for m in rest] == ["2", "3", "4", "5"]
    assert wait_for(lambda: hub(api).count == 0)
    api.store.finish_search(search_id=sid, status="succeeded")
    again = api.http.get(f"/searches/{sid}/events").text  # finished: the replay is all there is
    assert again.startswith("event: finished\n") and '"status": "succeeded"' in again


def test_stream_of_a_queued_search_starts_from_the_database(api: Api) -> None:
    sid = api.search()
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        messages = sse_messages(response)
        first = next(messages)
        assert first["event"] == "status" and "id" not in first
        assert first["data"] == {
            "type": "status",
            "search_id": sid,
            "status": "queued",
            "epoch": None,
            "total": 3,
            "progress": 0.0,
        }
        publish_later(api.queue, sid, [{"type": "status", "status": "running", "worker": "w"}])
        assert next(messages)["data"]["status"] == "running"


def test_a_resumed_search_does_not_replay_its_old_finished_event(api: Api) -> None:
    sid = api.search("cancelled")
    api.queue.events.publish(sid, {"type": "finished", "status": "cancelled", "error": None})
    api.http.post(f"/searches/{sid}/resume")  # queued again; Redis still holds the old finished event
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        messages = sse_messages(response)
        assert next(messages)["data"]["status"] == "queued"
        publish_later(api.queue, sid, [{"type": "status", "status": "running", "worker": "w2"}])
        second = next(messages)
        assert second["data"]["worker"] == "w2" and second["id"] == "2"


def test_unknown_search_is_404_not_a_stream(api: Api) -> None:
    response = api.http.get("/searches/999999/events")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_heartbeats_and_an_end_the_database_saw_first(embedded_home: Path, serve: Any) -> None:
    settings = Settings(home=embedded_home, sse_heartbeat_s=0.3)
    with serve(create_app(settings, queue_prefix=f"beat{uuid.uuid4().hex[:8]}")) as server:
        api = Api(server)
        sid = api.search()
        with api.http.stream("GET", f"/searches/{sid}/events") as response:
            messages = sse_messages(response)
            assert next(messages)["event"] == "status"
            assert next(messages) == {"comment": "heartbeat"}
            api.store.request_cancel(search_id=sid)  # cancelled while queued: no worker publishes
            final = next(m for m in messages if "comment" not in m)
            assert final["event"] == "finished" and final["data"]["status"] == "cancelled"
            assert list(messages) == []
        api.http.close()


def test_a_client_that_leaves_gives_its_place_back(api: Api) -> None:
    sid = api.search("running")
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        messages = sse_messages(response)  # (a dropped generator would close its connection)
        next(messages)
        assert hub(api).count == 1
    assert wait_for(lambda: hub(api).count == 0), "the stream's follower outlived its client"


def test_a_stopped_subscription_ends_the_streams_and_the_next_one_starts_again(api: Api) -> None:
    sid = api.search("running")
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        messages = sse_messages(response)
        next(messages)
        hub(api).stop()  # as when Redis goes away: the streams end, EventSource reconnects
        assert list(messages) == []
    with api.http.stream("GET", f"/searches/{sid}/events") as response:
        messages = sse_messages(response)
        next(messages)
        publish_later(api.queue, sid, [{"type": "status", "status": "running", "worker": "again"}])
        assert next(messages)["data"]["worker"] == "again"


def test_idle_streams_share_one_subscription_and_hold_no_thread(api: Api) -> None:
    sid = api.search("running")
    followers = 48  # more than the 40 threads Starlette gives sync routes
    limits = httpx.Limits(max_connections=followers + 4)
    with httpx.Client(base_url=api.server.url, timeout=10, limits=limits) as http, ExitStack() as stack:
        streams = [
            sse_messages(stack.enter_context(http.stream("GET", f"/searches/{sid}/events")))
            for _ in range(followers)
        ]
        for stream in streams:  # (a dropped generator would close its connection)
            next(stream)
        assert hub(api).count == followers
        assert api.queue.redis.pubsub_numpat() == 1  # one pattern subscription for them all
        hub_threads = [t.name for t in threading.enumerate() if t.name.startswith("sse-")]
        assert hub_threads == ["sse-hub"]  # one thread for the subscription, none per stream
        began = time.monotonic()
        assert api.http.get(f"/searches/{sid}").status_code == 200  # a sync route
        assert api.http.get("/healthz").status_code == 200
        assert time.monotonic() - began < 3.0
        publish_later(api.queue, sid, [{"type": "status", "status": "running", "worker": "all"}], delay=0)
        assert all(next(stream)["data"]["worker"] == "all" for stream in streams)
    assert wait_for(lambda: hub(api).count == 0, timeout=10)


def test_followers_past_the_cap_are_429(embedded_home: Path, serve: Any) -> None:
    settings = Settings(home=embedded_home, sse_max_followers=3)
    with serve(create_app(settings, queue_prefix=f"cap{uuid.uuid4().hex[:8]}")) as server:
        api = Api(server)
        sid = api.search("running")
        limits = httpx.Limits(max_connections=8)
        with httpx.Client(base_url=server.url, timeout=10, limits=limits) as http, ExitStack() as stack:
            open_streams = [
                stack.enter_context(http.stream("GET", f"/searches/{sid}/events")) for _ in range(3)
            ]
            assert [r.status_code for r in open_streams] == [200, 200, 200]
            over = http.get(f"/searches/{sid}/events")
            assert over.status_code == 429
            error = over.json()["error"]
            assert error["field"] == "ENAS_SSE_MAX_FOLLOWERS" and "limit of 3" in error["message"]
            open_streams[0].close()
            assert wait_for(lambda: server.app.state.hub.count == 2)
            with http.stream("GET", f"/searches/{sid}/events") as again:
                assert again.status_code == 200
        api.http.close()


def test_500_followers_all_get_every_event(embedded_home: Path, serve: Any) -> None:
    followers = 500
    settings = Settings(home=embedded_home)
    with serve(create_app(settings, queue_prefix=f"many{uuid.uuid4().hex[:8]}")) as server:
        api = Api(server)
        sid = api.search("running")

        async def follow(http: httpx.AsyncClient, started: asyncio.Queue[int]) -> list[str]:
            kinds = []
            async with http.stream("GET", f"/searches/{sid}/events") as response:
                assert response.status_code == 200, await response.aread()
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        kinds.append(line.removeprefix("event: "))
                        if len(kinds) == 1:
                            started.put_nowait(1)
            return kinds

        async def run() -> list[Any]:
            limits = httpx.Limits(max_connections=followers + 10)
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
                started: asyncio.Queue[int] = asyncio.Queue()
                tasks = [asyncio.create_task(follow(http, started)) for _ in range(followers)]
                for _ in range(followers):
                    await asyncio.wait_for(started.get(), 60)
                assert server.app.state.hub.count == followers
                await asyncio.to_thread(api.queue.events.publish, sid, {"type": "epoch", "epoch": 0})
                await asyncio.to_thread(
                    api.queue.events.publish, sid, {"type": "finished", "status": "succeeded", "error": None}
                )
                return await asyncio.gather(*tasks, return_exceptions=True)

        results = asyncio.run(run())
        assert [r for r in results if not isinstance(r, list)] == []  # no stream failed
        assert all(r == ["status", "epoch", "finished"] for r in results), {tuple(r) for r in results}
        assert wait_for(lambda: server.app.state.hub.count == 0, timeout=10)
        api.http.close()
