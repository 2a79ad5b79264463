"""A small Python client for the enas-service HTTP API; the CLI is built on it.

Example:
    client = EnasClient("http://127.0.0.1:8000")
    search = client.submit({"space": "micro", "dataset": "digits", "epochs": 2, "seed": 0})
    client.wait(search["id"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class EnasClientError(Exception):
    """An error answer from the server (status >= 400) or no answer at all.

    Attributes:
        status: the HTTP status, or None when the server could not be reached.
        code / field: from the server's JSON error body when it sent one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field

    @property
    def is_client_error(self) -> bool:
        """True for 4xx answers: the request itself was wrong."""
        return self.status is not None and 400 <= self.status < 500


class EnasClient:
    """Calls the API; every method returns the decoded JSON body or raises EnasClientError."""

    def __init__(self, server: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EnasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; decode JSON; turn error answers into EnasClientError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise EnasClientError(f"cannot reach {self.server}: {e}") from e
        if response.status_code >= 400:
            raise _error_from(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    # -- searches ----------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/searches", json=spec)

    def search(self, search_id: int) -> dict[str, Any]:
        return self.request("GET", f"/searches/{search_id}")

    def searches(self, *, status: str | None = None, limit: int = 50) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self.request("GET", "/searches", params=params)

    def epochs(self, search_id: int) -> dict[str, Any]:
        return self.request("GET", f"/searches/{search_id}/epochs")

    def architectures(self, search_id: int, **params: Any) -> dict[str, Any]:
        params = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", f"/searches/{search_id}/architectures", params=params)

    def derived(self, search_id: int) -> dict[str, Any]:
        return self.request("GET", f"/searches/{search_id}/derived")

    def retrains(self, search_id: int) -> dict[str, Any]:
        return self.request("GET", f"/searches/{search_id}/retrains")

    def architecture(self, architecture_id: int) -> dict[str, Any]:
        return self.request("GET", f"/architectures/{architecture_id}")

    def spaces(self) -> dict[str, Any]:
        return self.request("GET", "/spaces")

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")

    # -- waiting -----------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until /healthz answers, or raise EnasClientError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except EnasClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def follow(self, search_id: int, *, interval: float = 1.0) -> Iterator[dict[str, Any]]:
        """Yield the search each time it changes, until it reaches a terminal status.

        Polls GET /searches/{id}; tolerant of the server going away for a moment (it retries
        for up to a minute before giving up).
        """
        last: tuple[Any, ...] | None = None
        failures = 0
        while True:
            try:
                search = self.search(search_id)
                failures = 0
            except EnasClientError as e:
                if e.is_client_error or failures > int(60 / interval):
                    raise
                failures += 1
                time.sleep(interval)
                continue
            key = (search.get("status"), search.get("epoch"), search.get("progress"))
            if key != last:
                last = key
                yield search
            if search.get("status") in TERMINAL_STATUSES:
                return
            time.sleep(interval)

    def wait(self, search_id: int, *, timeout: float | None = None,
             on_change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Block until the search ends; return its final state."""
        start = time.monotonic()
        search: dict[str, Any] = {}
        for search in self.follow(search_id):
            if on_change:
                on_change(search)
            if timeout is not None and time.monotonic() - start > timeout:
                raise EnasClientError(f"search {search_id} still {search.get('status')} after {timeout}s")
        return search


def _error_from(response: httpx.Response) -> EnasClientError:
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = err.get("message") or response.reason_phrase
        if err.get("field"):
            message = f"{err['field']}: {message}"
        return EnasClientError(message, status=response.status_code, code=err.get("code"),
                               field=err.get("field"))
    text = response.text.strip()[:500] or response.reason_phrase
    return EnasClientError(f"HTTP {response.status_code}: {text}", status=response.status_code)
