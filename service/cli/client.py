"""A small Python client for the enas-service HTTP API; the CLI is built on it.

Example:
    client = EnasClient("http://127.0.0.1:8000")
    search = client.submit({"space": "micro", "dataset": "digits", "epochs": 2, "seed": 0})
    client.wait(search["id"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
JSON = dict[str, Any]


class EnasClientError(Exception):
    """An error answer from the server (status >= 400) or no answer at all.

    Attributes:
        status: the HTTP status, or None when the server could not be reached.
        code / field: from the server's JSON error body when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field

    @property
    def is_client_error(self) -> bool:
        """True for 4xx answers: the request itself was wrong."""
        return self.status is not None and 400 <= self.status < 500

    @property
    def is_unreachable(self) -> bool:
        """True when no answer came at all (connection refused, timeout)."""
        return self.status is None


class EnasClient:
    """Calls the API; every method returns the decoded JSON body or raises EnasClientError."""

    def __init__(self, server: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> EnasClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; decode JSON (else return the text); error answers raise EnasClientError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise EnasClientError(f"cannot reach {self.server}: {e}") from e
        if response.status_code >= 400:
            raise _error_from(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        body = self.request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise EnasClientError(f"{method} {path}: expected a JSON object, got {type(body).__name__}")
        return body

    # -- searches ----------------------------------------------------------------------------
    def submit(self, spec: Mapping[str, Any]) -> JSON:
        """POST /searches: the new search (status ``queued``)."""
        return self._json("POST", "/searches", json=dict(spec))

    def search(self, search_id: int) -> JSON:
        """GET /searches/{id}: status, progress, best reward, timings, resolved spec, links."""
        return self._json("GET", f"/searches/{search_id}")

    def searches(self, *, status: str | None = None, limit: int = 50, cursor: str | None = None) -> JSON:
        """GET /searches: ``{"items", "next_cursor", "counts"}``, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/searches", params=params)

    def cancel(self, search_id: int) -> JSON:
        """POST /searches/{id}/cancel (cooperative for a running search; idempotent; 409 once finished)."""
        return self._json("POST", f"/searches/{search_id}/cancel")

    def cancel_retrain(self, retrain_id: int) -> JSON:
        """POST /retrains/{id}/cancel (a queued run at once, a running one within seconds; 409 once
        it succeeded or failed)."""
        return self._json("POST", f"/retrains/{retrain_id}/cancel")

    def resume(self, search_id: int) -> JSON:
        """POST /searches/{id}/resume: queue a failed or cancelled search again (409 otherwise)."""
        return self._json("POST", f"/searches/{search_id}/resume")

    def epochs(self, search_id: int) -> JSON:
        """GET /searches/{id}/epochs: ``{"items": [{"epoch", "metrics", ...}]}`` in order."""
        return self._json("GET", f"/searches/{search_id}/epochs")

    def architectures(self, search_id: int, **params: Any) -> JSON:
        """GET /searches/{id}/architectures (``epoch``, ``phase``, ``order``, ``limit``, ``cursor``)."""
        params = {k: v for k, v in params.items() if v is not None}
        return self._json("GET", f"/searches/{search_id}/architectures", params=params)

    def derived(self, search_id: int) -> JSON:
        """GET /searches/{id}/derived: ``{"items": [{"rank", "score", "architecture_id", ...}]}``."""
        return self._json("GET", f"/searches/{search_id}/derived")

    def retrains(self, search_id: int) -> JSON:
        """GET /searches/{id}/retrains: ``{"items": [{"id", "architecture_id", "status", ...}]}``."""
        return self._json("GET", f"/searches/{search_id}/retrains")

    def retrain(
        self,
        search_id: int,
        *,
        architecture_ids: list[int] | None = None,
        top_k: int | None = None,
        epochs: int | None = None,
    ) -> JSON:
        """POST /searches/{id}/retrain: retrain ``architecture_ids`` of a finished search, or its best
        ``top_k`` derived architectures (neither: the best one), optionally for ``epochs``.
        Returns ``{"items": [retrain rows]}`` (202; 409 while the search is queued or running)."""
        body = {"architecture_ids": architecture_ids, "top_k": top_k, "epochs": epochs}
        return self._json(
            "POST", f"/searches/{search_id}/retrain", json={k: v for k, v in body.items() if v is not None}
        )

    def best(self, search_id: int) -> JSON:
        """The search's best architecture: the derived one ranked 1, else the sampled one with the
        best reward. Returns ``{"search_id", "source": "derived" | "best_reward", "rank", "score",
        "architecture"}`` (the architecture with its ``structured`` form).

        Raises:
            EnasClientError: status 404 (code ``not_found``) when the search has no architecture yet.
        """
        derived = self.derived(search_id)["items"]
        if derived:
            top = min(derived, key=lambda d: d["rank"])
            source, rank, score, architecture_id = (
                "derived",
                top["rank"],
                top["score"],
                top["architecture_id"],
            )
        else:
            search = self.search(search_id)
            architecture_id = search.get("best_architecture_id")
            if architecture_id is None:
                raise EnasClientError(
                    f"search {search_id} has no architecture yet ({search.get('status')})",
                    status=404,
                    code="not_found",
                )
            source, rank, score = "best_reward", None, search.get("best_reward")
        return {
            "search_id": search_id,
            "source": source,
            "rank": rank,
            "score": score,
            "architecture": self.architecture(architecture_id),
        }

    def events(self, search_id: int, *, read_timeout: float = 60.0) -> Iterator[JSON]:
        """GET /searches/{id}/events (Server-Sent Events): the latest state, then each event as the
        worker publishes it, until the ``finished`` event. Heartbeat comments are skipped.

        Raises:
            EnasClientError: an error answer, or the connection lost (reconnect by calling again:
                the stream restarts with the latest state).
        """
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        try:
            with self._http.stream("GET", f"/searches/{search_id}/events", timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                for event in parse_sse(response.iter_lines()):
                    yield event
                    if event.get("type") == "finished":
                        return
        except httpx.HTTPError as e:
            raise EnasClientError(f"event stream of search {search_id} from {self.server} broke: {e}") from e

    # -- architectures -----------------------------------------------------------------------
    def architecture(self, architecture_id: int) -> JSON:
        """GET /architectures/{id}: tokens, genotype, ``structured`` form, reward, links."""
        return self._json("GET", f"/architectures/{architecture_id}")

    def architecture_svg(self, architecture_id: int) -> str:
        """GET /architectures/{id}/svg: the drawing, SVG text."""
        return str(self.request("GET", f"/architectures/{architecture_id}/svg"))

    def export(self, architecture_id: int, fmt: str = "json") -> JSON | str:
        """GET /architectures/{id}/export?format=: ``json`` gives the versioned genotype document
        (a dict with ``network``), ``pytorch`` the text of a standalone ``model.py``. The server
        answers ``onnx`` with 501 (code ``not_implemented``): ONNX is built where torch is
        (``enasctl export --format onnx``)."""
        body = self.request("GET", f"/architectures/{architecture_id}/export", params={"format": fmt})
        return body if isinstance(body, dict) else str(body)

    # -- the rest ----------------------------------------------------------------------------
    def spaces(self) -> JSON:
        """GET /spaces: ``{"spaces": {name: description}, "presets": [...]}``."""
        return self._json("GET", "/spaces")

    def presets(self) -> JSON:
        """GET /presets: ``{"items": [{..., "spec"}]}``."""
        return self._json("GET", "/presets")

    def health(self) -> JSON:
        """GET /healthz."""
        return self._json("GET", "/healthz")

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

    def wait(
        self,
        search_id: int,
        *,
        timeout: float | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
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
        return EnasClientError(
            message, status=response.status_code, code=err.get("code"), field=err.get("field")
        )
    text = response.text.strip()[:500] or response.reason_phrase
    return EnasClientError(f"HTTP {response.status_code}: {text}", status=response.status_code)


def parse_sse(lines: Iterable[str]) -> Iterator[JSON]:
    """Decode Server-Sent Events text lines into event dicts (``data`` JSON; ``type`` from the
    ``event:`` field when the data lacks one). Comment lines (``: heartbeat``) are skipped."""
    kind: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                event = json.loads("\n".join(data))
                if isinstance(event, dict):
                    event.setdefault("type", kind or "message")
                    yield event
            kind, data = None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
