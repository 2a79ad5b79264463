"""The web page and the API docs under the server's Content-Security-Policy, in headless Chromium:
each page draws its content with no CSP violation (no inline script or style, nothing from another
site). The API alone serves them (uvicorn in a thread, SQLite, the embedded Redis), with a search
whose epochs and architectures are written to the store, so the list, the charts and the drawing
all render."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.api.app import create_app
from service.settings import Settings
from tests.service.conftest import ServerThread

WATCH = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));"
)
TOKENS = [0, 1, 0, 1] * 10
GENOTYPE = {"version": 1, "space": "micro", "params": {"num_nodes": 5, "num_ops": 5}, "tokens": TOKENS}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    from service.queue.connection import start_embedded

    handle, _ = start_embedded(tmp_path)
    try:
        with ServerThread(create_app(Settings(home=tmp_path))) as running:
            yield running
    finally:
        handle.shutdown()


def a_search_with_results(server: ServerThread) -> int:
    import httpx

    response = httpx.post(f"{server.url}/searches", json={"space": "micro", "epochs": 3, "name": "csp"})
    assert response.status_code == 201, response.text
    search_id = int(response.json()["id"])
    store = server.app.state.store
    store.mark_running(search_id=search_id, worker_id="w")
    for epoch in range(2):
        architectures = [
            {
                "phase": "sample",
                "index": i,
                "tokens": TOKENS,
                "hash": f"{epoch}{i:015x}",
                "genotype": GENOTYPE,
            }
            | {"reward": 0.2 * i + 0.1 * epoch, "entropy": 1.0, "log_prob": -2.0}
            for i in range(3)
        ]
        metrics = {"reward_mean": 0.3 + 0.1 * epoch, "reward_max": 0.5, "entropy": 2.5, "loss": 1.0}
        store.record_epoch(search_id=search_id, epoch=epoch, metrics=metrics, architectures=architectures)
    return search_id


def wait_for(browser: Any, selector: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = browser.execute_script(f"return document.querySelectorAll({selector!r}).length")
        if count:
            return int(count)
        time.sleep(0.2)
    pytest.fail(f"{selector} did not appear in {timeout:.0f}s")


def violations(browser: Any) -> list[str]:
    return list(browser.execute_script("return window.cspViolations || ['the watcher did not run']"))


def test_pages_load_with_no_csp_violation(server: ServerThread, browser: Any) -> None:
    search_id = a_search_with_results(server)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    pages = [
        ("/", "#searches tbody tr[data-id] svg.bar"),
        (f"/ui/searches/{search_id}", "#charts svg polyline"),
        (f"/ui/searches/{search_id}", "#drawing svg rect"),
        ("/docs", ".swagger-ui .opblock"),
        ("/redoc", "[data-section-id]"),
    ]
    for path, selector in pages:
        browser.get(f"{server.url}{path}")
        wait_for(browser, selector)
        time.sleep(0.3)  # late styles and workers
        assert violations(browser) == [], path
        assert browser.execute_script("return document.getElementById('problem')?.hidden ?? true"), path

    # the watcher sees a violation when there is one: an image from another site is refused
    browser.execute_script(
        "document.body.insertAdjacentHTML('beforeend', '<img src=\"http://other.example/x.png\">')"
    )
    time.sleep(0.5)
    assert any("img-src" in v for v in violations(browser))
