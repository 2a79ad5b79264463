"""Artifacts every node can reach (issue 11): the one artifact module (`service.artifacts`) on a shared
folder (plain path and ``file://`` URI) and on an S3-compatible server the test starts (moto's), with
checkpoints written, read back and pruned, a search resumed from an S3 checkpoint, and retrained
weights saved and read back for export."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from service import artifacts
from service.queue import Queue
from service.settings import Settings
from service.store import Store
from tests.workers.test_resume import RESUME_OVERRIDES, reference_and_interrupted, search_rows
from workers.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    newest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from workers.retrain import save_retrained

Spec = Callable[..., dict[str, Any]]
BUCKET = "enas-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) with the bucket ``enas-test``."""
    pytest.importorskip("moto.server", reason="install the dev extra (moto[server])")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=5
        ).close()
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS variables pointing at the test's server; returns a fresh ``s3://`` prefix."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return f"s3://{BUCKET}/run-{time.monotonic_ns()}"


@pytest.fixture(params=["path", "file-uri", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An artifact dir of each kind: a (shared) folder, the same as a ``file://`` URI, an S3 prefix."""
    if request.param == "path":
        return str(tmp_path / "shared")
    if request.param == "file-uri":
        return (tmp_path / "shared").as_uri()
    return str(request.getfixturevalue("s3_env"))


def test_put_get_list_delete(location: str) -> None:
    uri = artifacts.join(location, 3, "a.bin")
    assert not artifacts.exists(uri) and artifacts.list_names(artifacts.join(location, 3)) == []
    with pytest.raises(artifacts.ArtifactMissing, match="a.bin"):
        artifacts.get_bytes(uri)
    artifacts.put_bytes(uri, b"one")
    artifacts.put_bytes(uri, b"two")  # replaced whole
    artifacts.put_bytes(artifacts.join(location, 3, "b.bin"), b"b")
    assert artifacts.exists(uri) and artifacts.get_bytes(uri) == b"two"
    assert artifacts.list_names(artifacts.join(location, 3)) == ["a.bin", "b.bin"]  # no temp files
    assert artifacts.delete(uri) and not artifacts.delete(uri)
    assert artifacts.list_names(artifacts.join(location, 3)) == ["b.bin"]


def test_checkpoints_write_read_and_retention(location: str) -> None:
    for epoch in range(4):
        uri = save_checkpoint(location, 7, epoch, f"c{epoch}".encode(), f"s{epoch}".encode())
    assert uri == f"{location}/7/ckpt-3.pt"  # the stored URI is the stable, meaningful one
    assert load_checkpoint(uri, search_id=7).shared == b"s3"
    chosen = newest_checkpoint(location, 7, None, max_epoch=2)
    assert chosen is not None and chosen.epoch == 2
    assert len(prune_checkpoints(location, 7, keep=2)) == 2
    assert [e for e, _ in list_checkpoints(location, 7)] == [3, 2]


def test_unsupported_scheme_and_unreachable_store_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unsupported artifact location gs://b/p"):
        Settings(home=tmp_path, artifact_dir="gs://b/p")
    with pytest.raises(ValueError, match="carries credentials"):
        Settings(home=tmp_path, artifact_dir="s3://key:secret@b/p")
    assert Settings(home=tmp_path, artifact_dir="s3://b/p").artifact_dir == "s3://b/p"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    with pytest.raises(artifacts.ArtifactError, match="s3://b/p/1/ckpt-0.pt") as caught:
        save_checkpoint("s3://b/p", 1, 0, b"c", b"s")
    assert "very-secret-value" not in str(caught.value)


def test_retrained_weights_saved_and_read_back_for_export(location: str) -> None:
    from enas_core.export import load_weights
    from service.cli.results import _trained_weights

    model = torch.nn.Linear(3, 2)
    uri = save_retrained(location, 5, 9, model)
    assert uri == f"{location}/5/retrain-9.pt"

    class Client:
        def retrains(self, search_id: int) -> dict[str, Any]:
            return {"items": [{"architecture_id": 4, "status": "succeeded", "artifact_uri": uri}]}

    found = _trained_weights(Client(), 5, 4)  # type: ignore[arg-type]
    assert found == uri
    fresh = load_weights(torch.nn.Linear(3, 2), io.BytesIO(artifacts.get_bytes(uri)))
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True)
    )


@pytest.mark.usefixtures("ray_session")
def test_search_resumes_from_an_s3_checkpoint(
    store: Store, queue: Queue, settings: Settings, tiny_spec: Spec, s3_env: str
) -> None:
    from workers.runner import run_search

    settings = settings.model_copy(update={"checkpoint_keep": 1, "artifact_dir": s3_env})
    spec = tiny_spec(**RESUME_OVERRIDES)
    reference, interrupted = reference_and_interrupted(store, queue, settings, spec)
    paused = store.get_search(search_id=interrupted.id)
    assert paused.checkpoint_uri == f"{s3_env}/{interrupted.id}/ckpt-0.pt"
    assert artifacts.exists(paused.checkpoint_uri)
    assert run_search(interrupted.id, store=store, queue=queue, settings=settings).status == "succeeded"
    assert search_rows(store, interrupted.id) == search_rows(store, reference.id)
    assert [e for e, _ in list_checkpoints(s3_env, reference.id)] == [1]  # pruned on S3 too
