"""`enasctl` without a server: documented exit codes, bad input (exit 2), an unreachable server
(exit 1), spaces, shell completion; and the spec-building and SSE-parsing helpers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from enas_core.spaces import get_space, list_spaces
from enas_core.zoo.nasnet.space import KNOWN
from service.cli.client import EnasClient, EnasClientError, parse_sse
from service.cli.searches import apply_override, build_spec, print_search
from tests.cli.conftest import UNREACHABLE, _base_env, enasctl


def _squashed(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_help_documents_the_exit_codes() -> None:
    result = enasctl("--help")
    assert result.returncode == 0
    text = _squashed(result.stdout)
    assert "Exit codes: 0 ok; 1 failure" in text and "2 usage or bad input" in text
    assert "ENAS_SERVER" in text and "--install-completion" in text
    for command in (
        "submit",
        "list",
        "status",
        "watch",
        "cancel",
        "resume",
        "best",
        "export",
        "retrain",
        "retrains",
        "spaces",
        "serve",
        "worker",
        "up",
        "db",
    ):
        assert f" {command} " in text, command


def test_unreachable_server_exits_1() -> None:
    for args in (("status", "1"), ("list", "--json"), ("best", "1"), ("export", "1", "-f", "pytorch")):
        result = enasctl(*args, "--server", UNREACHABLE)
        assert result.returncode == 1, (args, result.stderr)
        assert "cannot reach" in result.stderr
    via_env = enasctl("list", env={**_base_env(), "ENAS_SERVER": UNREACHABLE})
    assert via_env.returncode == 1 and UNREACHABLE in via_env.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    missing = enasctl("submit", str(tmp_path / "nope.yaml"), "--server", UNREACHABLE)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("space: [micro\n")
    assert enasctl("submit", str(broken)).returncode == 2
    bad_set = enasctl("submit", "--space", "micro", "--set", "child.channels")
    assert bad_set.returncode == 2 and "section.key=value" in bad_set.stderr
    assert enasctl("submit").returncode == 2  # no spec at all
    assert enasctl("export", "1", "--format", "onnx").returncode == 2  # onnx needs -o
    assert enasctl("export", "1", "--format", "tf").returncode == 2
    assert enasctl("status", "not-a-number").returncode == 2
    assert enasctl("spaces", "nope").returncode == 2


def test_spaces_json_has_decisions_and_exact_sizes() -> None:
    result = enasctl("spaces", "--json")
    assert result.returncode == 0
    spaces = json.loads(result.stdout)
    assert set(spaces) == set(list_spaces()) >= {"micro", "macro", "rnn", "nasnet"}
    assert spaces["nasnet"]["known"]["nasnet-a"] == list(get_space("nasnet").tokens(KNOWN["nasnet-a"]))
    assert spaces["macro"]["size"] == 160618186625454535808756219904  # 6^12 * 2^66, exact
    micro = {s["value"]: s["label"] for s in spaces["micro"]["sizes"]}
    assert micro[129600000000].startswith("paper formula")  # 1.296e11
    assert micro[25628906250000000000000000].startswith("literal")  # ~2.5629e25
    rnn = {s["value"]: s["label"] for s in spaces["rnn"]["sizes"]}
    assert rnn[8036313307545600].startswith("paper formula")  # 4^12 * 12!
    for name, count in (("micro", 40), ("macro", 78), ("rnn", 23)):
        assert len(spaces[name]["decisions"]) == spaces[name]["num_tokens"] == count
    table = enasctl("spaces")
    assert table.returncode == 0 and "160618186625454535808756219904" in table.stdout.replace(
        "│", ""
    ).replace("\n", "").replace(" ", "")


def test_shell_completion_script_and_completions() -> None:
    script = enasctl("--show-completion", "bash")
    assert script.returncode == 0
    assert (
        "_ENASCTL_COMPLETE" in script.stdout and "complete " in script.stdout and "enasctl" in script.stdout
    )
    env = {
        **_base_env(),
        "_ENASCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "enasctl export 1 --format ",
        "COMP_CWORD": "4",
    }
    completions = enasctl(env=env)
    assert completions.returncode == 0 and completions.stdout.split() == ["json", "pytorch", "onnx"]


def test_build_spec_merges_file_flags_and_sets(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"space": "micro", "epochs": 5, "child": {"channels": 8}}))
    sets = ["child.channels=16", "retrain.enabled=false", "name=my run", "resources.device=cpu"]
    spec = build_spec(spec_file, {"epochs": 2, "seed": None}, sets)
    assert spec == {
        "space": "micro",
        "epochs": 2,
        "child": {"channels": 16},
        "retrain": {"enabled": False},
        "name": "my run",
        "resources": {"device": "cpu"},
    }
    for bad in ("nokey", "=3", "child..x=1", "child.=1"):
        with pytest.raises(ValueError, match="bad --set"):
            apply_override({}, bad)
    with pytest.raises(ValueError, match="not a section"):
        apply_override({"epochs": 3}, "epochs.x=1")
    with pytest.raises(ValueError, match="--space"):
        build_spec(None, {}, [])


def test_parse_sse_skips_comments_and_types_events() -> None:
    lines = [
        "event: status",
        'data: {"status": "running", "seq": 1}',
        "",
        ": heartbeat",
        "",
        "event: finished",
        "id: 2",
        'data: {"type": "finished", "status": "succeeded"}',
        "",
    ]
    events = list(parse_sse(lines))
    assert events == [
        {"status": "running", "seq": 1, "type": "status"},
        {"type": "finished", "status": "succeeded"},
    ]


def _client_with(routes: dict[str, httpx.Response]) -> EnasClient:
    """An EnasClient whose HTTP calls are answered from `routes` (path -> response), 404 otherwise."""

    def answer(request: httpx.Request) -> httpx.Response:
        not_found = {"error": {"code": "not_found", "message": f"no {request.url.path}", "field": None}}
        return routes.get(request.url.path, httpx.Response(404, json=not_found))

    client = EnasClient("http://enas.test")
    client._http = httpx.Client(base_url=client.server, transport=httpx.MockTransport(answer))
    return client


def test_client_best_falls_back_to_the_best_reward() -> None:
    architecture = {"id": 7, "search_id": 3, "tokens": [0], "structured": {}}
    running = {"id": 3, "status": "running", "best_architecture_id": 7, "best_reward": 0.5}
    queued = {"id": 4, "status": "queued", "best_architecture_id": None}
    routes = {
        "/searches/3/derived": httpx.Response(200, json={"items": []}),
        "/searches/3": httpx.Response(200, json=running),
        "/architectures/7": httpx.Response(200, json=architecture),
        "/searches/4/derived": httpx.Response(200, json={"items": []}),
        "/searches/4": httpx.Response(200, json=queued),
    }
    with _client_with(routes) as client:
        assert client.best(3) == {
            "search_id": 3,
            "source": "best_reward",
            "rank": None,
            "score": 0.5,
            "architecture": architecture,
        }
        with pytest.raises(EnasClientError) as info:
            client.best(4)
        assert info.value.status == 404 and info.value.is_client_error
        with pytest.raises(EnasClientError) as missing:
            client.search(99)
        assert missing.value.code == "not_found" and "/searches/99" in str(missing.value)


def test_client_events_reads_the_stream_to_finished() -> None:
    body = (
        'event: status\nid: 1\ndata: {"type": "status", "status": "running", "seq": 1}\n\n: heartbeat\n\n'
        'event: finished\nid: 2\ndata: {"type": "finished", "status": "succeeded", "seq": 2}\n\n'
        'event: epoch\ndata: {"type": "epoch"}\n\n'
    )
    stream = httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    with _client_with({"/searches/5/events": stream}) as client:
        assert [e["type"] for e in client.events(5)] == ["status", "finished"]  # stops at finished
        with pytest.raises(EnasClientError) as info:
            list(client.events(6))
        assert info.value.status == 404


def test_status_shows_why_a_search_is_pending(capsys: pytest.CaptureFixture[str]) -> None:
    reason = "waiting for 1 GPU for the shared model: 0 of 1 free on the nodes that fit"
    search = {"id": 7, "status": "pending", "pending_reason": reason, "spec": {}, "total_epochs": 2}
    print_search(search)
    shown = _squashed(capsys.readouterr().out)
    assert "search 7 pending" in shown and f"pending: {reason}" in shown
