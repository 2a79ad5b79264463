"""The web page in headless Chromium against the real stack (API, Redis, worker, Ray, SQLite).

The search page must update live (progress rises without a reload, over Server-Sent Events) and
show an architecture drawing; the drawings of all three spaces must render with no text overlap.
Screenshots go to the test's tmp dir, or ENAS_SCREENSHOT_DIR.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enas_core.genotype import Genotype, genotype_svg
from enas_core.spaces import get_space
from service.cli.client import EnasClient

pytestmark = pytest.mark.e2e

SEARCH = {
    "space": "micro",
    "dataset": "digits",
    "epochs": 4,
    "seed": 0,
    "name": "browser-test",
    "controller": {"steps_per_epoch": 3, "archs_per_step": 4},
    "child": {"num_nodes": 3, "steps_per_epoch": 20},
    "derive": {"num_samples": 4, "top_k": 2},
    "retrain": {"epochs": 2},
}

READ_STATE = """
const progress = document.getElementById("progress");
const live = document.getElementById("live");
const badge = document.querySelector("#search-status .badge");
return [progress ? progress.value : null, live ? live.dataset.mode : null, badge ? badge.textContent : null];
"""


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` passes (fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def screenshot(browser: Any, path: Path, size: tuple[float, float] | None = None) -> None:
    """A PNG of the whole page (or of its top-left ``size``), beyond the window if need be."""
    if size is None:
        size = browser.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight]"
        )
    clip = {"x": 0, "y": 0, "width": float(size[0]), "height": float(size[1]), "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))


def watch_progress(browser: Any, screenshots: Path, timeout: float) -> tuple[list[float], set[str], str]:
    """Read the page's progress, live mode and status until the stream closes; returns the
    distinct progress values in order, the modes seen and the last status."""
    values: list[float] = []
    modes: set[str] = set()
    status, shot = "", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value, mode, status = browser.execute_script(READ_STATE)
        modes.add(mode)
        if value is not None and (not values or values[-1] != value):
            values.append(value)
        if not shot and value and 0 < value < 1:
            time.sleep(0.5)  # let the charts draw
            screenshot(browser, screenshots / "search-running.png")
            shot = True
        if mode == "closed" and status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    return values, modes, status


def test_search_page_updates_live(start_stack: Any, browser: Any, screenshots: Path) -> None:
    stack = start_stack()
    with EnasClient(stack.url) as client:
        client.wait_ready(timeout=120)
        search = client.submit(SEARCH)
    page = f"{stack.url}/ui/searches/{search['id']}"
    browser.get(page)
    wait_until(lambda: browser.execute_script(READ_STATE)[0] is not None, 30, "the progress element")
    browser.execute_script("window.sameDocument = true;")  # gone if the page reloads

    values, modes, status = watch_progress(browser, screenshots, timeout=600)
    print(f"progress read live: {values}; modes: {sorted(modes)}")
    assert status == "succeeded", stack.log()[-4000:]
    assert len([v for v in values if v > 0]) >= 2, f"progress did not rise live: {values}"
    assert values == sorted(values) and values[-1] == pytest.approx(1.0)
    assert "live" in modes, f"the page never followed the event stream: {modes}"
    assert browser.execute_script("return window.sameDocument === true"), "the page reloaded"

    rects = wait_until(
        lambda: browser.execute_script("return document.querySelectorAll('#drawing svg rect').length"),
        30,
        "an architecture drawing",
    )
    assert rects == 2 * (2 + 3 + 1)  # micro: two cells of 2 inputs, 3 nodes, 1 output
    tabs = browser.execute_script(
        "return [...document.querySelectorAll('#arch-tabs .tab')].map(t => t.textContent)"
    )
    assert "Derived #1" in tabs and "Derived #2" in tabs
    wait_until(
        lambda: browser.execute_script("return document.querySelectorAll('#retrain-table tbody tr').length"),
        30,
        "the retraining table",
    )
    charts = browser.execute_script("return document.querySelectorAll('#charts svg polyline').length")
    assert charts >= 5  # reward mean, max, baseline; entropy; loss; accuracy
    rows = browser.execute_script("return document.querySelectorAll('#arch-table tbody tr[data-id]').length")
    assert rows == 20  # the first page of 4 epochs x 12 sampled architectures
    screenshot(browser, screenshots / "search-finished.png")
    browser.find_element("css selector", ".drawing").screenshot(str(screenshots / "search-drawing.png"))

    browser.get(f"{stack.url}/")
    wait_until(
        lambda: browser.execute_script(
            "return document.querySelectorAll('#searches tbody tr[data-id]').length"
        ),
        30,
        "the searches table",
    )
    assert "browser-test" in browser.find_element("css selector", "#searches").text
    screenshot(browser, screenshots / "searches.png")
    box = browser.find_element("css selector", "#filter-text")
    box.send_keys("no-such-search")
    assert "no search matches" in browser.find_element("css selector", "#searches").text

    # Without EventSource (an old browser, a proxy that breaks streams) the page polls the API.
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.EventSource;"})
    browser.get(page)
    wait_until(lambda: browser.execute_script(READ_STATE)[1] == "closed", 30, "the polling fallback")
    assert browser.execute_script("return 'EventSource' in window") is False
    assert browser.execute_script(READ_STATE)[0] == 1


OVERLAPS = (Path(__file__).parent / "overlaps.js").read_text()
VIEWBOX = "const b = document.documentElement.viewBox.baseVal; return [b.width, b.height]"


@pytest.mark.parametrize(("name", "params"), [("micro", {}), ("macro", {"num_layers": 12}), ("rnn", {})])
def test_drawings_render_without_overlap(
    browser: Any, screenshots: Path, tmp_path: Path, name: str, params: dict[str, int]
) -> None:
    space = get_space(name, **params)
    for seed in range(3):
        rng = random.Random(seed)
        tokens = [rng.randrange(d.choices) for d in space.decisions]
        svg = genotype_svg(Genotype.of(space, tokens))
        path = tmp_path / f"{name}-{seed}.svg"
        path.write_text(svg)
        browser.get(path.as_uri())
        assert browser.execute_script(OVERLAPS) == [], f"{name} seed {seed}"
        if seed == 0:
            screenshot(browser, screenshots / f"drawing-{name}.png", browser.execute_script(VIEWBOX))


def test_a_pending_search_shows_its_reason(browser: Any, screenshots: Path, tmp_path: Path) -> None:
    """The search page of a search waiting for Ray resources: the ``pending`` badge and the reason
    (the API in-process over real HTTP; the store made it pending as a worker would)."""
    from service.api.app import create_app
    from service.queue.connection import start_embedded
    from service.settings import Settings
    from tests.service.conftest import ServerThread

    handle, _ = start_embedded(tmp_path / "home")
    try:
        settings = Settings(home=tmp_path / "home", data_dir=tmp_path / "data")
        with ServerThread(create_app(settings)) as server:
            store = server.app.state.store
            sid = store.create_search(spec={"space": "micro", "epochs": 2, "name": "waits"}).id
            token = store.mark_running(search_id=sid).fencing_token
            reason = "waiting for 1 GPU for the shared model: 0 of 1 free on the nodes that fit"
            store.set_pending(search_id=sid, reason=reason, fencing_token=token)
            browser.get(f"{server.url}/ui/searches/{sid}")
            read = 'const e = document.getElementById("pending-reason"); return e ? e.textContent : null'
            assert wait_until(lambda: browser.execute_script(read), 30, "the pending reason") == reason
            badge = browser.execute_script(READ_STATE)[2]
            assert badge == "pending"
            screenshot(browser, screenshots / "search-pending.png")
            store.finish_search(search_id=sid, status="cancelled", fencing_token=token)
    finally:
        handle.shutdown()
