"""What every request passes before a route (`service.api.guards`) and the bounds of ids and cursors,
over real HTTP: a foreign Origin or a non-JSON write, an untrusted Host, a chunked body past the
limit, ids past 2^63, crafted cursors; the security headers; the docs served from the package."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.api.guards import MAX_BODY_BYTES, host_name, same_origin
from service.api.schemas import MAX_ID
from service.settings import Settings
from tests.service.conftest import Api

FOREIGN = "http://evil.example"
ALLOWED = "https://ui.example.org"


@pytest.fixture(scope="module")
def api(embedded_home: Path, serve: Any) -> Iterator[Api]:
    settings = Settings(home=embedded_home, allowed_origins=f"{ALLOWED}/")
    with serve(create_app(settings, queue_prefix=f"guards{uuid.uuid4().hex[:8]}")) as server:
        client = Api(server)
        yield client
        client.http.close()


def queued_search(api: Api) -> int:
    response = api.http.post("/searches", json={"space": "micro", "epochs": 1})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def error(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]


def test_cross_site_form_post_is_refused(api: Api) -> None:
    search_id = queued_search(api)
    form = api.http.post(
        f"/searches/{search_id}/cancel",
        content=b"x=1",
        headers={"Origin": FOREIGN, "Content-Type": "text/plain"},
    )
    assert form.status_code == 415 and error(form)["field"] == "content-type"
    assert "application/json" in error(form)["message"]
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = api.http.post(f"/searches/{search_id}/cancel", headers={"Content-Type": content_type})
        assert answer.status_code == 415, content_type  # even with an empty body
    assert api.http.get(f"/searches/{search_id}").json()["status"] == "queued"


def test_foreign_origin_cannot_change_state(api: Api) -> None:
    search_id = queued_search(api)
    for origin in (FOREIGN, "null", f"http://127.0.0.1:{api.server.port + 1}"):
        answer = api.http.post(f"/searches/{search_id}/cancel", json={}, headers={"Origin": origin})
        assert answer.status_code == 403, origin
        assert error(answer)["field"] == "origin" and "ENAS_ALLOWED_ORIGINS" in error(answer)["message"]
    no_json = api.http.post("/searches", json={"space": "micro"}, headers={"Origin": FOREIGN})
    assert no_json.status_code == 403
    assert api.http.get(f"/searches/{search_id}").json()["status"] == "queued"

    same = api.http.post(f"/searches/{search_id}/cancel", headers={"Origin": api.server.url})
    assert same.status_code == 200 and same.json()["status"] == "cancelled"
    configured = api.http.post(f"/searches/{queued_search(api)}/cancel", headers={"Origin": ALLOWED})
    assert configured.status_code == 200  # ENAS_ALLOWED_ORIGINS (its trailing slash ignored)
    cli = api.http.post(f"/searches/{queued_search(api)}/cancel")  # no Origin, no body: not a browser
    assert cli.status_code == 200
    assert api.http.get("/searches", headers={"Origin": FOREIGN}).status_code == 200  # reads are not writes


def test_untrusted_host_is_refused(api: Api) -> None:
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example"):
        answer = api.http.get("/healthz", headers={"Host": host})
        assert answer.status_code == 400, host
        assert error(answer)["field"] == "host" and "ENAS_TRUSTED_HOSTS" in error(answer)["message"]
        assert answer.headers["x-content-type-options"] == "nosniff"
    for host in (f"localhost:{api.server.port}", f"127.0.0.1:{api.server.port}", "[::1]:8000", "localhost"):
        assert api.http.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_trusted_hosts_setting(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).trusted_host_names() == {"localhost", "127.0.0.1", "::1"}
    bound = Settings(home=tmp_path, bind_host="10.1.2.3").trusted_host_names()
    assert bound is not None and "10.1.2.3" in bound
    assert "0.0.0.0" not in (Settings(home=tmp_path, bind_host="0.0.0.0").trusted_host_names() or ())
    assert Settings(home=tmp_path, trusted_hosts="API.example.org, api").trusted_host_names() == {
        "api.example.org",
        "api",
    }
    assert Settings(home=tmp_path, trusted_hosts="*").trusted_host_names() is None


def test_host_and_origin_parsing() -> None:
    assert [host_name(h) for h in ("a.b:80", "A.B", "[::1]:8000", "[::1]", "::1")] == [
        "a.b",
        "a.b",
        "::1",
        "::1",
        "::1",
    ]
    assert same_origin("http://a.b", "a.b:80") and same_origin("https://a.b", "a.b")
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not same_origin("http://a.b:8000", "a.b:8001") and not same_origin("http://a.b", "a.bc")
    assert not same_origin("null", "a.b") and not same_origin("file://", "a.b")


def test_security_headers_on_every_answer(api: Api) -> None:
    answers = [
        api.http.get("/"),
        api.http.get("/searches"),
        api.http.get("/nowhere"),  # 404
        api.http.get("/healthz", headers={"Host": "evil.example"}),  # 400 from a guard
        api.http.post("/searches", content=b"x", headers={"Content-Type": "text/plain"}),  # 415
        api.http.get("/ui/static/app.js"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 400, 415, 200]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_docs_are_served_from_the_package(api: Api) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = api.http.get(page)
        assert html.status_code == 200 and f'src="/docs/static/{asset}"' in html.text
        assert "cdn" not in html.text.lower() and "https://" not in html.text  # nothing from elsewhere
        script = api.http.get(f"/docs/static/{asset}")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert len(script.content) > 100_000 and b"https://cdn." not in script.content
        csp = html.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "cdn" not in csp
    assert "'sha256-" in api.http.get("/docs").headers["content-security-policy"]  # its inline start-up
    assert api.http.get("/docs/static/swagger-ui.css").status_code == 200
    assert api.http.get("/docs/static/..%2f..%2fsettings.py").status_code == 404
    missing = api.http.get("/docs/static/core.py")  # a file of the package, not an asset
    assert missing.status_code == 404 and error(missing)["field"] == "name"


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"space": "micro", "name": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_chunked_body_is_counted_as_it_arrives(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    big = api.http.post("/searches", content=chunks(2 * MAX_BODY_BYTES), headers=headers)
    assert big.status_code == 413 and error(big)["field"] == "body"
    assert str(MAX_BODY_BYTES) in error(big)["message"]
    parts = iter([b'{"space": ', b'"micro", "epochs": 1}'])
    small = api.http.post("/searches", content=parts, headers=headers)
    assert small.status_code == 201, small.text  # chunked, under the limit: read whole


ID_ROUTES = (
    "/searches/{}",
    "/searches/{}/architectures",
    "/searches/{}/epochs",
    "/searches/{}/derived",
    "/searches/{}/retrains",
    "/searches/{}/events",
    "/architectures/{}",
    "/architectures/{}/svg",
    "/architectures/{}/export",
)


def test_ids_past_the_database_range_are_422(api: Api) -> None:
    for route in ID_ROUTES:
        for value in (2**63, 2**64 + 5, 10**30, MAX_ID + 1, 0, -1):
            answer = api.http.get(route.format(value))
            assert answer.status_code == 422, (route, value)
            field = "architecture_id" if route.startswith("/architectures") else "search_id"
            assert error(answer)["field"] == field
        assert api.http.get(route.format(MAX_ID)).status_code == 404  # the largest id: just unknown
    for action in ("cancel", "resume", "retrain"):
        assert api.http.post(f"/searches/{2**63}/{action}").status_code == 422
    retrain = api.http.post(f"/searches/{queued_search(api)}/retrain", json={"architecture_ids": [2**63]})
    assert retrain.status_code == 422 and error(retrain)["field"] == "architecture_ids.0"
    epoch = api.http.get(f"/searches/{queued_search(api)}/architectures", params={"epoch": 2**63})
    assert epoch.status_code == 422 and error(epoch)["field"] == "epoch"
    assert api.http.get("/healthz").status_code == 200  # the same keep-alive connection still works


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_crafted_cursors_are_422(api: Api) -> None:
    search_id = queued_search(api)
    crafted = ["[null]", "[1e400]", "[NaN]", "[true]", "[1.5]", "[-1]", f"[{2**63}]", "[[1]]", "{}", "[1, 2]"]
    for text in crafted:
        for path, params in (
            ("/searches", {}),
            (f"/searches/{search_id}/architectures", {}),
        ):
            answer = api.http.get(path, params={**params, "cursor": cursor(text)})
            assert answer.status_code == 422, (path, text)
            assert error(answer)["field"] == "cursor"
    by_reward = f"/searches/{search_id}/architectures"
    for text in ("[NaN, 1]", "[1e400, 1]", "[1, null]", f"[{2**70}, 1]", '["a", 1]'):
        answer = api.http.get(by_reward, params={"order": "reward", "cursor": cursor(text)})
        assert answer.status_code == 422 and error(answer)["field"] == "cursor", text
    good = api.http.get(by_reward, params={"order": "reward", "cursor": cursor("[0.5, 3]")})
    assert good.status_code == 200
    for path in ("/searches", by_reward):
        assert api.http.get(path, params={"cursor": ""}).status_code == 200  # empty: the first page
        too_long = api.http.get(path, params={"cursor": "A" * 201})
        assert too_long.status_code == 422 and error(too_long)["field"] == "cursor"
        odd = api.http.get(path, params={"cursor": "a+b/c="})  # not the URL-safe alphabet
        assert odd.status_code == 422 and error(odd)["field"] == "cursor"


def test_the_schema_says_what_a_spec_needs(api: Api) -> None:
    spec = api.http.get("/openapi.json").json()["components"]["schemas"]["SearchSpec"]
    assert {"required": ["space"]} | spec["anyOf"][0] == spec["anyOf"][0]  # space or preset required
    assert any(b["required"] == ["preset"] for b in spec["anyOf"])
    empty = api.http.post("/searches", json={})
    assert empty.status_code == 422 and error(empty)["field"] == "space"  # schema-invalid: refused
    assert "give a space" in error(empty)["message"]
