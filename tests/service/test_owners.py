"""Owners over real HTTP (`service.auth`, `service.api.access`): with two tokens, nothing of one
owner's searches is visible to or changeable by the other (404, as if missing); an admin sees both;
reads need a token; the page signs in with a cookie that authenticates reads only; ``/metrics``
shows each caller's own running searches; ``enasctl serve`` refuses unusable tokens and an exposed
host without tokens (exit 2)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.auth import AuthConfigError
from service.settings import Settings
from tests.service.test_api import arch

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB, OPS = "tok-alice", "tok-bob", "tok-ops"
TOKENS = f"alice:{ALICE},bob:sha256:{hashlib.sha256(BOB.encode()).hexdigest()},ops:{OPS}"


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Owners:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.store = server.app.state.store
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def finished_search(self, token: str) -> dict[str, int]:
        """A failed search of ``token``'s owner with an epoch, a derived architecture, a retrain."""
        created = self.http.post("/searches", json={"space": "micro", "epochs": 2}, headers=as_(token))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        self.store.mark_running(search_id=sid)
        record = self.store.record_epoch(search_id=sid, epoch=0, metrics={}, architectures=[arch(0, 0.5)])
        [derived] = self.store.record_derived(search_id=sid, items=[{**arch(1, None), "score": 0.9}])
        retrain = self.store.create_retrain(search_id=sid, architecture_id=derived.architecture_id)
        self.store.finish_search(
            search_id=sid, status="failed", error="boom", traceback="Traceback: /srv/enas/secret.py line 1"
        )
        return {"search": sid, "arch": int(record.best_architecture_id), "retrain": retrain.id}


@pytest.fixture(scope="module")
def owners(embedded_home: Path, serve: Any) -> Iterator[Owners]:
    settings = Settings(home=embedded_home, auth_tokens=TOKENS, admins="ops")
    with serve(create_app(settings, queue_prefix=f"owners{uuid.uuid4().hex[:8]}")) as server:
        client = Owners(server)
        yield client
        client.http.close()


def read_paths(ids: dict[str, int]) -> list[str]:
    sid, aid = ids["search"], ids["arch"]
    return [
        f"/searches/{sid}",
        f"/searches/{sid}/architectures",
        f"/searches/{sid}/epochs",
        f"/searches/{sid}/derived",
        f"/searches/{sid}/retrains",
        f"/searches/{sid}/events",
        f"/architectures/{aid}",
        f"/architectures/{aid}/svg",
        f"/architectures/{aid}/export",
        f"/architectures/{aid}/export?format=pytorch",
    ]


def write_calls(ids: dict[str, int]) -> list[tuple[str, dict[str, Any] | None]]:
    sid = ids["search"]
    return [
        (f"/searches/{sid}/cancel", None),
        (f"/searches/{sid}/resume", None),
        (f"/searches/{sid}/retrain", {"architecture_ids": [ids["arch"]]}),
        (f"/searches/{sid}/retrain", None),
    ]


def test_nothing_of_one_owner_is_visible_or_changeable_by_another(owners: Owners) -> None:
    a, b = owners.finished_search(ALICE), owners.finished_search(BOB)
    for mine, theirs, token in ((a, b, ALICE), (b, a, BOB)):
        for path in read_paths(mine):
            answer = owners.http.get(path, headers=as_(token))
            assert answer.status_code == 200, (path, answer.text)
        mine_text = owners.http.get(f"/searches/{mine['search']}", headers=as_(token)).json()
        assert "/srv/enas/secret.py" in mine_text["error_traceback"]  # the owner sees its traceback
        for path in read_paths(theirs):
            answer = owners.http.get(path, headers=as_(token))
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["error"]["code"] == "not_found"
            assert "alice" not in answer.text and "bob" not in answer.text and "/srv" not in answer.text
        missing = owners.http.get("/searches/999999", headers=as_(token)).json()["error"]["message"]
        foreign = owners.http.get(f"/searches/{theirs['search']}", headers=as_(token)).json()["error"]
        assert foreign["message"] == missing.replace("999999", str(theirs["search"]))  # same as missing
        for path, body in write_calls(theirs):
            answer = owners.http.post(path, json=body, headers=as_(token))
            assert answer.status_code == 404, (path, answer.text)
        # retraining mine with their architecture: it is missing for me too
        path = f"/searches/{mine['search']}/retrain"
        wrong = owners.http.post(path, json={"architecture_ids": [theirs["arch"]]}, headers=as_(token))
        assert wrong.status_code == 404 and wrong.json()["error"]["field"] == "architecture_id"
        listed = owners.http.get("/searches", params={"limit": 500}, headers=as_(token)).json()
        owners_seen = {item["owner"] for item in listed["items"]}
        assert owners_seen == {"alice" if token == ALICE else "bob"}
        assert sum(listed["counts"].values()) == len(listed["items"])
    for ids in (a, b):  # unchanged by the other's attempts
        assert owners.store.get_search(search_id=ids["search"]).status == "failed"
        assert owners.store.get_retrain(retrain_id=ids["retrain"]).status == "queued"


def test_an_admin_sees_and_changes_every_search(owners: Owners) -> None:
    a, b = owners.finished_search(ALICE), owners.finished_search(BOB)
    for ids in (a, b):
        for path in read_paths(ids):
            assert owners.http.get(path, headers=as_(OPS)).status_code == 200, path
        assert "/srv/enas/secret.py" in owners.http.get(f"/searches/{ids['search']}", headers=as_(OPS)).text
    listed = owners.http.get("/searches", params={"limit": 500}, headers=as_(OPS)).json()
    assert {"alice", "bob"} <= {item["owner"] for item in listed["items"]}
    resumed = owners.http.post(f"/searches/{a['search']}/resume", headers=as_(OPS))
    assert resumed.status_code == 200 and resumed.json()["owner"] == "alice"  # still alice's


def test_reads_need_a_known_token(owners: Owners) -> None:
    a = owners.finished_search(ALICE)
    for path in ["/searches", "/metrics", *read_paths(a)]:
        for headers in ({}, as_("nope"), as_(f"sha256:{hashlib.sha256(BOB.encode()).hexdigest()}")):
            answer = owners.http.get(path, headers=headers)
            assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", path
    for open_path in ("/healthz", "/spaces", "/presets", "/", "/openapi.json"):
        assert owners.http.get(open_path).status_code == 200, open_path


def test_metrics_show_the_callers_running_searches(owners: Owners) -> None:
    sids = {}
    for token in (ALICE, BOB):
        sids[token] = owners.http.post("/searches", json={"space": "micro"}, headers=as_(token)).json()["id"]
        owners.store.mark_running(search_id=sids[token])
    try:
        text = owners.http.get("/metrics", headers=as_(ALICE)).text
        assert f'search_id="{sids[ALICE]}"' in text and f'search_id="{sids[BOB]}"' not in text
        admin = owners.http.get("/metrics", headers=as_(OPS)).text
        assert f'search_id="{sids[ALICE]}"' in admin and f'search_id="{sids[BOB]}"' in admin
    finally:
        for sid in sids.values():
            owners.store.finish_search(search_id=sid, status="cancelled")


def test_page_signs_in_with_a_read_only_cookie(owners: Owners) -> None:
    a = owners.finished_search(ALICE)
    with httpx.Client(base_url=owners.server.url, timeout=10) as page:
        assert page.post("/session", json={"token": "nope"}).status_code == 401
        signed = page.post("/session", json={"token": ALICE})
        assert signed.status_code == 200 and signed.json() == {"name": "alice", "admin": False}
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert page.get(f"/searches/{a['search']}").status_code == 200  # the cookie authenticates reads
        assert page.post(f"/searches/{a['search']}/resume").status_code == 401  # but no write
        assert page.delete("/session", headers={"Content-Type": "application/json"}).status_code == 204
        page.cookies.clear()
        assert page.get(f"/searches/{a['search']}").status_code == 401


def test_create_app_refuses_unusable_tokens_and_an_open_network(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="ENAS_AUTH_TOKENS item 1"):
        create_app(Settings(home=tmp_path, auth_tokens="just-a-token"))
    with pytest.raises(AuthConfigError, match="--insecure"):
        create_app(Settings(home=tmp_path, bind_host="0.0.0.0"))
    create_app(Settings(home=tmp_path, bind_host="0.0.0.0", insecure=True))
    create_app(Settings(home=tmp_path, bind_host="0.0.0.0", auth_tokens="alice:tok"))


def enasctl(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENAS_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**clean, "ENAS_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "up"])
def test_enasctl_refuses_with_exit_2(tmp_path: Path, command: str) -> None:
    bad = enasctl(tmp_path, command, ENAS_AUTH_TOKENS="alice:ok,hunter2secret")
    assert bad.returncode == 2 and "ENAS_AUTH_TOKENS item 2" in bad.stderr
    assert "hunter2secret" not in bad.stdout + bad.stderr and "ok" not in bad.stderr.split("item 2")[1][:1]
    exposed = enasctl(tmp_path, command, "--host", "0.0.0.0")
    assert exposed.returncode == 2 and "--insecure" in exposed.stderr and "ENAS_AUTH_TOKENS" in exposed.stderr
