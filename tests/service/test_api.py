"""The HTTP API over real HTTP: uvicorn in a thread, SQLite in a temp folder, the embedded Redis."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.api.app import create_app
from service.queue import Job
from service.settings import Settings
from tests.service.conftest import Api

SERVER_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def api(embedded_home: Path, serve: Any) -> Iterator[Api]:
    settings = Settings(home=embedded_home, data_dir=embedded_home / "data")
    with serve(create_app(settings)) as server:
        client = Api(server)
        yield client
        client.http.close()


def submit(api: Api, **spec: Any) -> httpx.Response:
    return api.http.post("/searches", json={"space": "micro", "epochs": 2, **spec})


def arch(index: int, reward: float | None) -> dict[str, Any]:
    tokens = [0, 1, 0, 1] * 10
    genotype = {"version": 1, "space": "micro", "params": {"num_nodes": 5, "num_ops": 5}, "tokens": tokens}
    return {
        "phase": "sample",
        "index": index,
        "tokens": tokens,
        "hash": f"{index:016x}",
        "genotype": genotype,
        "reward": reward,
        "entropy": 1.0,
        "log_prob": -2.0,
    }


def test_health_and_ready(api: Api) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_submit_and_read(api: Api) -> None:
    depth = api.queue.jobs.depth()
    response = submit(api, name="first", child={"channels": 4})
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["owner"], body["name"], body["epoch"], body["total_epochs"]) == (
        "queued",
        "anonymous",
        "first",
        None,
        2,
    )
    assert body["spec"]["preset"] == "demo-micro" and body["spec"]["child"]["channels"] == 4
    assert (
        body["links"]["self"] == f"/searches/{body['id']}"
        and body["links"]["page"] == f"/ui/searches/{body['id']}"
    )
    assert "fencing_token" not in body and body["created_at"].endswith("Z")
    assert api.queue.jobs.depth() == depth + 1  # the id was pushed
    assert api.http.get(f"/searches/{body['id']}").json() == {**body, "duration_s": None}


def test_list_with_cursor_and_filter(api: Api) -> None:
    ids = [submit(api).json()["id"] for _ in range(3)]
    page = api.http.get("/searches", params={"limit": 2}).json()
    assert [s["id"] for s in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = api.http.get("/searches", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == ids[0] and page["counts"]["queued"] >= 3
    assert all(s["status"] == "queued" for s in api.http.get("/searches?status=queued").json()["items"])
    bad = api.http.get("/searches", params={"status": "nope"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
    bad = api.http.get("/searches", params={"cursor": "zzz"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"child": {"foo": 1}}, "child.foo", "unknown field child.foo"),
        ({"child": {"hidden_size": 8}}, "child.hidden_size", "unknown key child.hidden_size"),
        ({"epochs": True}, "epochs", "valid integer"),
        ({"retrain": {"epochs": True}}, "retrain.epochs", "valid integer"),
        ({"child": {"channels": 100_000}}, "child.channels", "less than or equal to 1024"),
        ({"child": {"num_layers": 1000}}, "child.num_layers", "less than or equal to 64"),
        ({"child": {"num_nodes": 10**6}}, "child.num_nodes", "less than or equal to 32"),
        ({"child": {"batch_size": 10**9}}, "child.batch_size", "less than or equal to 4096"),
        ({"child": {"steps_per_epoch": 10**12}}, "child.steps_per_epoch", "less than or equal to 100000"),
        ({"controller": {"hidden": 10**9}}, "controller.hidden", "less than or equal to 2048"),
        ({"derive": {"num_samples": 10**12}}, "derive.num_samples", "less than or equal to 10000"),
        ({"retrain": {"epochs": 10**9}}, "retrain.epochs", "less than or equal to 10000"),
        ({"space": "rnn", "dataset": "digits"}, "dataset", "needs one of ptb"),
        ({"epochs": 0}, "epochs", "greater than or equal to 1"),
        ({"bogus": 1}, "bogus", "unknown field bogus"),
        ({"controller": {"lr": "fast"}}, "controller.lr", "valid number"),
        ({"preset": "paper-ptb"}, "preset", "not micro"),
    ],
)
def test_invalid_specs_name_the_field(api: Api, spec: dict[str, Any], field: str, words: str) -> None:
    response = submit(api, **spec)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field and words in error["message"]


@pytest.mark.parametrize("number", [b"NaN", b"1e999", b"-Infinity"])
def test_numbers_must_be_finite(api: Api, number: bytes) -> None:
    body = b'{"space": "micro", "child": {"lr_max": ' + number + b"}}"
    response = api.http.post("/searches", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "child.lr_max" and "finite number" in error["message"]


def test_cost_is_estimated_stored_and_bounded(api: Api) -> None:
    body = submit(api).json()
    stored = api.http.get(f"/searches/{body['id']}").json()["spec"]["cost"]
    assert stored == body["spec"]["cost"] and 0 < stored["search_macs"] < stored["macs"]
    assert submit(api, preset="paper-cifar10-micro", space=None, epochs=None).status_code == 201
    response = submit(api, preset="paper-cifar10-micro", space=None, retrain={"epochs": 10_000})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "cost" and "ENAS_MAX_COST" in error["message"] and "MACs" in error["message"]


def test_bad_bodies(api: Api) -> None:
    response = api.http.post("/searches", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"
    response = api.http.post(
        "/searches", content=b"x" * (1 << 21), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_data_folder_checked_at_submit(api: Api) -> None:
    folder = api.server.app.state.settings.data_dir / "ptb-partial"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ptb.train.txt").write_text("a b c\n")
    response = submit(api, space="rnn", dataset="ptb", data_dir=str(folder))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "data_dir" and "ptb.valid.txt" in error["message"]
    assert str(folder) not in error["message"]  # names the file, not the server's folder


def test_data_dir_must_lie_in_the_data_roots(api: Api, tmp_path: Path) -> None:
    root = api.server.app.state.settings.data_dir
    root.mkdir(parents=True, exist_ok=True)
    (tmp_path / ".ssh").mkdir()
    (root / "escape").unlink(missing_ok=True)
    (root / "escape").symlink_to(tmp_path / ".ssh")
    outside = [
        str(tmp_path / ".ssh"),  # exists
        str(tmp_path / "nothing-here"),  # does not
        f"{root}/../{tmp_path.name}/.ssh",  # leaves by ..
        str(root / "escape"),  # leaves by a symbolic link
        "/",
    ]
    answers = [submit(api, space="micro", dataset="cifar10", data_dir=path) for path in outside]
    assert [a.status_code for a in answers] == [422] * len(outside)
    messages = {a.json()["error"]["message"] for a in answers}
    assert len(messages) == 1  # the same answer whether the path exists or not
    (message,) = messages
    assert "data roots" in message and "ENAS_DATA_ROOTS" in message and str(tmp_path) not in message
    assert {a.json()["error"]["field"] for a in answers} == {"data_dir"}

    inside = submit(api, space="micro", dataset="cifar10", data_dir="cifar-copy")  # relative: in the root
    assert inside.status_code == 201, inside.text
    assert inside.json()["spec"]["data_dir"] == str((root / "cifar-copy").resolve())


def test_data_roots_setting_lists_the_allowed_folders(tmp_path: Path) -> None:
    roots = f"{tmp_path / 'a'}, {tmp_path / 'b'}"
    settings = Settings(home=tmp_path, data_roots=roots)
    assert settings.data_root_paths() == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert Settings(home=tmp_path).data_root_paths() == ((tmp_path / "data").resolve(),)


def test_unknown_ids_and_routes(api: Api) -> None:
    for path in ("/searches/999999", "/searches/999999/epochs", "/architectures/999999", "/nowhere"):
        response = api.http.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
    response = api.http.get("/searches/abc")
    assert response.status_code == 422 and response.json()["error"]["field"] == "search_id"


def test_progress_results_and_architectures(api: Api) -> None:
    sid = submit(api).json()["id"]
    api.store.mark_running(search_id=sid, worker_id="w")
    api.store.record_epoch(
        search_id=sid,
        epoch=0,
        metrics={"reward_mean": 0.4, "entropy": 2.5},
        architectures=[arch(i, r) for i, r in enumerate([0.3, None, 0.8])],
    )
    search = api.http.get(f"/searches/{sid}").json()
    assert (search["status"], search["epoch"], search["progress"], search["best_reward"]) == (
        "running",
        0,
        0.5,
        0.8,
    )
    assert search["links"]["best_architecture"] == f"/architectures/{search['best_architecture_id']}"
    epochs = api.http.get(f"/searches/{sid}/epochs").json()["items"]
    assert [(e["epoch"], e["metrics"]["reward_mean"]) for e in epochs] == [(0, 0.4)]
    page = api.http.get(f"/searches/{sid}/architectures", params={"order": "reward", "limit": 2}).json()
    assert [a["reward"] for a in page["items"]] == [0.8, 0.3] and page["next_cursor"]
    rest = api.http.get(
        f"/searches/{sid}/architectures", params={"order": "reward", "cursor": page["next_cursor"]}
    )
    assert [a["reward"] for a in rest.json()["items"]] == [None]
    one = api.http.get(page["items"][0]["links"]["self"]).json()
    assert (
        one["tokens"] == arch(0, 0)["tokens"] and one["genotype"]["space"] == "micro" and "structured" in one
    )
    if importlib.util.find_spec("enas_core.spaces") is not None:  # the structured form comes from the space
        assert one["structured"]["normal"]["nodes"][0]["inputs"] == [0, 0]
    derived = api.store.record_derived(search_id=sid, items=[{**arch(0, None), "score": 0.9}])
    retrain = api.store.create_retrain(search_id=sid, architecture_id=derived[0].architecture_id)
    assert api.http.get(f"/searches/{sid}/derived").json()["items"][0]["architecture"]["phase"] == "derive"
    assert api.http.get(f"/searches/{sid}/retrains").json()["items"][0]["id"] == retrain.id


def test_svg_and_spaces(api: Api) -> None:
    sid = submit(api).json()["id"]
    api.store.mark_running(search_id=sid)
    record = api.store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=[arch(0, 0.5)])
    svg = api.http.get(f"/architectures/{record.best_architecture_id}/svg")
    try:
        import enas_core.genotype  # noqa: F401
    except ImportError:
        assert svg.status_code == 503  # drawing module not in this build yet
    else:
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in svg.text
    spaces = api.http.get("/spaces")
    try:
        import enas_core.spaces  # noqa: F401
    except ImportError:
        assert spaces.status_code == 503
    else:
        assert spaces.status_code == 200 and "micro" in spaces.json()["spaces"]
    presets = api.http.get("/presets").json()["items"]
    assert {p["name"] for p in presets} >= {"demo-micro", "paper-ptb"}


def test_cancel_and_resume(api: Api) -> None:
    sid = submit(api).json()["id"]
    assert api.http.post(f"/searches/{sid}/cancel").json()["status"] == "cancelled"
    assert api.http.post(f"/searches/{sid}/cancel").status_code == 200  # idempotent
    resumed = api.http.post(f"/searches/{sid}/resume").json()
    assert resumed["status"] == "queued"
    api.store.mark_running(search_id=sid)
    running = api.http.post(f"/searches/{sid}/cancel").json()
    assert (running["status"], running["cancel_requested"]) == ("running", True)
    assert api.queue.cancels.requested(sid)
    api.store.finish_search(search_id=sid, status="cancelled")
    done = submit(api).json()["id"]
    api.store.mark_running(search_id=done)
    api.store.finish_search(search_id=done, status="succeeded")
    conflict = api.http.post(f"/searches/{done}/cancel")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    assert api.http.post(f"/searches/{done}/resume").status_code == 409


def test_a_pending_search_shows_why(api: Api) -> None:
    """A search whose actors wait for busy Ray resources: ``pending`` with its reason in GET, the
    list (and its status filter), and the OpenAPI schema; cancelling it sets the flag."""
    sid = submit(api).json()["id"]
    token = api.store.mark_running(search_id=sid).fencing_token
    reason = "waiting for 1 GPU for the shared model: 0 of 1 free on the nodes that fit"
    api.store.set_pending(search_id=sid, reason=reason, fencing_token=token)
    shown = api.http.get(f"/searches/{sid}").json()
    assert (shown["status"], shown["pending_reason"]) == ("pending", reason)
    listed = api.http.get("/searches", params={"status": "pending"}).json()
    assert [s["pending_reason"] for s in listed["items"] if s["id"] == sid] == [reason]
    assert listed["counts"]["pending"] >= 1
    schema = api.http.get("/openapi.json").json()["components"]["schemas"]["SearchPublic"]
    assert "pending_reason" in schema["properties"]
    api.store.set_pending(search_id=sid, reason=None, fencing_token=token)
    again = api.http.get(f"/searches/{sid}").json()
    assert (again["status"], again["pending_reason"]) == ("running", None)
    api.store.set_pending(search_id=sid, reason=reason, fencing_token=token)
    cancelled = api.http.post(f"/searches/{sid}/cancel").json()
    assert (cancelled["status"], cancelled["cancel_requested"]) == ("pending", True)
    assert api.queue.cancels.requested(sid)
    api.store.finish_search(search_id=sid, status="cancelled", fencing_token=token)
    assert api.http.get(f"/searches/{sid}").json()["pending_reason"] is None


def _finished_search(api: Api, *, derived: bool = True) -> tuple[int, list[int]]:
    """A succeeded search with two sampled architectures (derived in that order when asked)."""
    sid = submit(api).json()["id"]
    api.store.mark_running(search_id=sid)
    record = api.store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=[arch(0, 0.5)])
    ids = [record.best_architecture_id]
    if derived:
        rows = api.store.record_derived(
            search_id=sid, items=[{**arch(1, None), "score": 0.9}, {**arch(2, None), "score": 0.8}]
        )
        ids = [d.architecture_id for d in rows]
    api.store.finish_search(search_id=sid, status="succeeded")
    return sid, ids


def test_retrain_validates_and_queues_jobs(api: Api) -> None:
    queued = submit(api).json()["id"]
    busy = api.http.post(f"/searches/{queued}/retrain", json={})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "conflict"
    assert api.http.post("/searches/999999/retrain", json={}).status_code == 404
    sid, (best, second) = _finished_search(api)
    other, (foreign, _) = _finished_search(api)
    unknown = api.http.post(f"/searches/{sid}/retrain", json={"architecture_ids": [999999]})
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "architecture_id"
    wrong = api.http.post(f"/searches/{sid}/retrain", json={"architecture_ids": [foreign]})
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "architecture_ids"
    both = api.http.post(f"/searches/{sid}/retrain", json={"architecture_ids": [best], "top_k": 1})
    assert both.status_code == 422
    assert api.http.post(f"/searches/{sid}/retrain", json={"top_k": 0}).status_code == 422
    assert api.http.post(f"/searches/{sid}/retrain", json={"nope": 1}).status_code == 422
    no_derived, _ = _finished_search(api, derived=False)
    assert api.http.post(f"/searches/{no_derived}/retrain").status_code == 409
    assert api.store.list_retrains(search_id=sid) == []  # nothing written by the refusals

    depth = api.queue.jobs.depth()
    default = api.http.post(f"/searches/{sid}/retrain")  # no body: the best derived architecture
    assert default.status_code == 202
    (row,) = default.json()["items"]
    assert (row["architecture_id"], row["status"]) == (best, "queued")
    top = api.http.post(f"/searches/{sid}/retrain", json={"top_k": 2, "epochs": 3}).json()["items"]
    assert [r["architecture_id"] for r in top] == [best, second] and top[0]["id"] == row["id"]  # same row
    assert all(r["metrics"] == {"requested_epochs": 3} for r in top)  # not started yet: both take it
    assert api.queue.jobs.depth() == depth + 3  # one job per queued row and request (duplicates are harmless)
    jobs = api.queue.jobs.waiting()[:3]  # the newest three (the next one to be taken is last)
    assert Job.retrain(top[1]["id"]) in jobs and Job.retrain(row["id"]) in jobs
    api.store.finish_retrain(retrain_id=row["id"], status="succeeded", test_score=0.5)
    again = api.http.post(f"/searches/{sid}/retrain", json={"architecture_ids": [best]}).json()["items"]
    assert again[0]["status"] == "succeeded" and api.queue.jobs.depth() == depth + 3  # done: not queued again
    assert other != sid


def test_events_of_a_finished_search(api: Api) -> None:
    sid = submit(api).json()["id"]
    api.http.post(f"/searches/{sid}/cancel")
    response = api.http.get(f"/searches/{sid}/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("event: finished\n") and '"status": "cancelled"' in response.text


def test_pages(api: Api) -> None:
    for path in ("/", "/ui/searches/1"):
        response = api.http.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert '<script src="/ui/static/fallback.js"' in response.text and "/searches" in response.text
        assert "<script>" not in response.text  # no inline script: the CSP allows none


def test_auth_tokens(embedded_home: Path, tmp_path: Path, serve: Any) -> None:
    settings = Settings(home=tmp_path, redis_url=None, auth_tokens="alice:tok-a,bob:tok-b")
    settings.home = embedded_home  # share the module's embedded Redis
    settings.database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    with serve(create_app(settings, queue_prefix=f"auth{uuid.uuid4().hex[:8]}")) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            body = {"space": "micro", "epochs": 1}
            missing = http.post("/searches", json=body)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert missing.json()["error"]["code"] == "unauthorized"
            wrong = http.post("/searches", json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            created = http.post("/searches", json=body, headers={"Authorization": "Bearer tok-a"})
            assert created.status_code == 201 and created.json()["owner"] == "alice"
            sid = created.json()["id"]
            assert http.get(f"/searches/{sid}").status_code == 401  # reading needs a token too
            other = http.post(f"/searches/{sid}/cancel", headers={"Authorization": "Bearer tok-b"})
            assert other.status_code == 404  # another owner's search is answered as missing
            mine = http.post(f"/searches/{sid}/cancel", headers={"Authorization": "Bearer tok-a"})
            assert mine.json()["status"] == "cancelled"


def test_redis_down_gives_503(tmp_path: Path, serve: Any) -> None:
    settings = Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0")
    with serve(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["field"] == "redis"
        assert ready.json()["checks"]["database"] == "ok"
        response = http.post("/searches", json={"space": "micro"})
        assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
        [failed] = http.get("/searches").json()["items"]  # stored, then failed visibly
        assert failed["status"] == "failed" and "could not be queued" in failed["error"]


def test_machine_redis_server_with_own_prefix(tmp_path: Path, serve: Any) -> None:
    client = redis.Redis.from_url(SERVER_REDIS, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis server at {SERVER_REDIS}")
    prefix = f"enastest-{uuid.uuid4().hex[:12]}"
    settings = Settings(home=tmp_path, redis_url=SERVER_REDIS)
    try:
        with serve(create_app(settings, queue_prefix=prefix)) as server:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                sid = http.post("/searches", json={"space": "macro", "epochs": 1}).json()["id"]
                assert client.lrange(f"{prefix}:queue", 0, -1) == [str(sid)]
                assert http.get("/readyz").status_code == 200
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_cancel_retrain_queued_running_and_finished(api: Api) -> None:
    sid, (best, second) = _finished_search(api)
    queued = api.store.create_retrain(search_id=sid, architecture_id=best)
    running = api.store.create_retrain(search_id=sid, architecture_id=second)
    api.store.update_retrain(retrain_id=running.id, status="running")

    answer = api.http.post(f"/retrains/{queued.id}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"  # queued: at once
    assert api.http.post(f"/retrains/{queued.id}/cancel").json()["status"] == "cancelled"  # idempotent

    answer = api.http.post(f"/retrains/{running.id}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "running"  # its worker stops it
    assert api.queue.cancels.retrain_requested(running.id)
    assert not api.queue.cancels.retrain_requested(queued.id)

    api.store.finish_retrain(retrain_id=running.id, status="succeeded", test_score=0.5)
    finished = api.http.post(f"/retrains/{running.id}/cancel")
    assert finished.status_code == 409 and "already succeeded" in finished.json()["error"]["message"]
    missing = api.http.post("/retrains/999999/cancel")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "retrain_id"
    assert api.http.get(f"/retrains/{running.id}").json()["test_score"] == 0.5
