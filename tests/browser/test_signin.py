"""The web page on a server with tokens, in headless Chromium: it asks for a token, signs in (the
``enas_token`` cookie), then lists the caller's searches only and shows one of them; a wrong token
is refused on the form."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.settings import Settings
from tests.browser.test_csp import wait_for
from tests.service.conftest import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    from service.queue.connection import start_embedded

    handle, _ = start_embedded(tmp_path)
    try:
        settings = Settings(home=tmp_path, auth_tokens="alice:tok-alice,bob:tok-bob")
        with ServerThread(create_app(settings)) as running:
            yield running
    finally:
        handle.shutdown()


def submit(server: ServerThread, token: str, name: str) -> int:
    response = httpx.post(
        f"{server.url}/searches",
        json={"space": "micro", "epochs": 1, "name": name},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def sign_in(browser: Any, token: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.CSS_SELECTOR, "form.signin input[name=token]")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]").click()


def test_page_signs_in_and_shows_only_own_searches(server: ServerThread, browser: Any) -> None:
    mine, theirs = submit(server, "tok-alice", "alice-search"), submit(server, "tok-bob", "bob-search")
    browser.get(f"{server.url}/")
    wait_for(browser, "form.signin input[name=token]")
    sign_in(browser, "wrong")
    wait_for(browser, "form.signin .error-box:not([hidden])")
    shown = browser.execute_script("return document.querySelector('.error-box').textContent")
    assert "unknown token" in shown
    sign_in(browser, "tok-alice")
    wait_for(browser, "#searches tbody tr[data-id]")
    time.sleep(0.3)
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#searches tbody tr[data-id]')].map((r) => r.dataset.id)"
    )
    assert rows == [str(mine)], rows
    cookie = browser.get_cookie("enas_token")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    browser.get(f"{server.url}/ui/searches/{mine}")
    wait_for(browser, "#search-status .badge")
    browser.get(f"{server.url}/ui/searches/{theirs}")
    wait_for(browser, ".error-box")
    text = browser.execute_script("return document.querySelector('.error-box').textContent")
    assert "not found" in text and "bob" not in text
