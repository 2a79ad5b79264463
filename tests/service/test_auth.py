"""Tokens and callers (`service.auth`): the ``name:token`` / ``name:sha256:<hex>`` forms, the
refusals at start-up (never quoting a token), constant-time matching, admins, the exposure rule."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from service import auth
from service.auth import AuthConfigError, Caller, check_exposure, is_loopback, parse_tokens


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_named_and_hashed_tokens() -> None:
    tokens = parse_tokens(f"alice:tok-a, bob:sha256:{sha('tok-b')} ,alice:tok-a2", "bob")
    assert tokens.enabled
    assert [tokens.owner_of(t) for t in ("tok-a", "tok-a2", "tok-b", "nope", "")] == [
        "alice",
        "alice",
        "bob",
        None,
        None,
    ]
    assert tokens.owner_of(f"sha256:{sha('tok-b')}") is None  # the hash itself is not a token
    assert tokens.caller("bob") == Caller("bob", admin=True, scoped=True)
    assert tokens.caller("alice") == Caller("alice", admin=False, scoped=True)
    assert not parse_tokens("").enabled and not parse_tokens(" , ").enabled


@pytest.mark.parametrize(
    ("auth_tokens", "admins", "says"),
    [
        ("secret-without-name", "", "item 1 is not 'name:token'"),
        ("alice:ok,secret2", "", "item 2 is not 'name:token'"),
        ("alice:", "", "item 1 is not 'name:token'"),
        (":secret", "", "item 1: the name"),
        ("al ice:secret", "", "item 1: the name"),
        ("alice:sec ret", "", "item 1: a token is"),
        ("alice:sec;ret", "", "item 1: a token is"),
        ("alice:sha256:abc", "", "item 1: a hashed token"),
        ("alice:secret,bob:secret", "", "one token to two names"),
        ("", "alice", "ENAS_ADMINS is set but ENAS_AUTH_TOKENS is empty"),
        ("alice:secret", "carol", "ENAS_ADMINS names carol"),
    ],
)
def test_refusals_name_the_variable_never_the_token(auth_tokens: str, admins: str, says: str) -> None:
    with pytest.raises(AuthConfigError) as raised:
        parse_tokens(auth_tokens, admins)
    message = str(raised.value)
    assert says in message and "ENAS_" in message
    for secret in ("secret", "sec ret", "sec;ret", "abc"):
        assert secret not in message.replace("secret2", "")


def test_matching_compares_every_digest_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    tokens = parse_tokens("alice:tok-a,bob:tok-b,carol:tok-c")
    assert tokens.owner_of("tok-a") == "alice"  # the first matches, and the others are compared too
    assert len(calls) == 3 and all(a == auth.token_digest("tok-a") for a, _ in calls)


def test_exposure() -> None:
    none, some = parse_tokens(""), parse_tokens("alice:tok")
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host)
        check_exposure(none, host, insecure=False)
    for host in ("0.0.0.0", "::", "10.0.0.5", "api.example.org"):
        assert not is_loopback(host)
        with pytest.raises(AuthConfigError, match="--insecure") as raised:
            check_exposure(none, host, insecure=False)
        assert "ENAS_AUTH_TOKENS" in str(raised.value) and host in str(raised.value)
        check_exposure(none, host, insecure=True)
        check_exposure(some, host, insecure=False)


def test_visibility() -> None:
    anonymous, alice, admin = Caller(), Caller("alice", scoped=True), Caller("ops", admin=True, scoped=True)
    assert anonymous.sees("bob") and anonymous.owner_filter is None
    assert alice.sees("alice") and not alice.sees("bob") and alice.owner_filter == "alice"
    assert admin.sees("bob") and admin.owner_filter is None
