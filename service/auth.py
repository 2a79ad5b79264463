"""Who may call the API and what each caller sees: the tokens of ``ENAS_AUTH_TOKENS``, the admins of
``ENAS_ADMINS``, and the refusal to serve a network without tokens (``--insecure`` overrides it).

``ENAS_AUTH_TOKENS`` is a comma-separated list of ``name:token`` (the token in clear) or
``name:sha256:<64 hex digits>`` (the SHA-256 of the token, so the configuration holds no secret).
A name may have several tokens (rotation); a token belongs to one name. Tokens are letters, digits
and ``._~+/=-`` (what ``secrets.token_urlsafe`` and base64 give), so they fit a header and a cookie.

Every configured token is kept as its SHA-256 digest; a presented token is hashed and compared with
`hmac.compare_digest` against every digest (no early exit), so the time taken tells nothing about
which token, or how much of one, matched.

Messages about the configuration name the variable and the item's position, never a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass

ANONYMOUS = "anonymous"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
LOOPBACK_HOSTS = ("localhost",)


class AuthConfigError(ValueError):
    """The auth configuration cannot be used (the API refuses to start; ``enasctl serve`` exits 2)."""


def token_digest(token: str) -> bytes:
    """The SHA-256 digest of a token (what ``name:sha256:<hex>`` holds, as bytes)."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Credential:
    name: str
    digest: bytes


@dataclass(frozen=True)
class Tokens:
    """The accepted tokens (as digests) and the admin names; empty: auth is off."""

    credentials: tuple[Credential, ...] = ()
    admins: frozenset[str] = frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self.credentials)

    def owner_of(self, presented: str) -> str | None:
        """The name of the presented token, or None; compares with every digest in constant time."""
        digest = token_digest(presented)
        found = None
        for credential in self.credentials:
            if hmac.compare_digest(digest, credential.digest):
                found = credential.name
        return found

    def caller(self, name: str) -> Caller:
        """The caller holding a token of ``name``."""
        return Caller(name=name, admin=name in self.admins, scoped=True)


def _credential(item: str, position: int) -> Credential:
    where = f"ENAS_AUTH_TOKENS item {position}"
    name, sep, secret = item.partition(":")
    if not sep or not secret:
        raise AuthConfigError(f"{where} is not 'name:token' or 'name:sha256:<hex>': every token needs a name")
    if not NAME.match(name):
        raise AuthConfigError(
            f"{where}: the name must be 1 to 64 letters, digits or '_.@-' (starting with a letter or digit)"
        )
    hashed = HASHED.match(secret)
    if secret.startswith("sha256:") and not hashed:
        raise AuthConfigError(f"{where}: a hashed token is 'name:sha256:<64 hex digits>'")
    if hashed:
        return Credential(name, bytes.fromhex(hashed.group(1)))
    if not TOKEN.match(secret):
        raise AuthConfigError(f"{where}: a token is letters, digits and '._~+/=-' only")
    return Credential(name, token_digest(secret))


def parse_tokens(auth_tokens: str, admins: str = "") -> Tokens:
    """The tokens of ``ENAS_AUTH_TOKENS`` and the admins of ``ENAS_ADMINS``.

    Raises AuthConfigError: an item that is not ``name:token`` or ``name:sha256:<hex>``, a token
    given to two names, admins without tokens, or an admin name no token has.
    """
    items = [item.strip() for item in auth_tokens.split(",") if item.strip()]
    credentials = tuple(_credential(item, position) for position, item in enumerate(items, start=1))
    names: dict[bytes, str] = {}
    for credential in credentials:
        if names.setdefault(credential.digest, credential.name) != credential.name:
            raise AuthConfigError("ENAS_AUTH_TOKENS gives one token to two names")
    admin_names = frozenset(name.strip() for name in admins.split(",") if name.strip())
    if admin_names and not credentials:
        raise AuthConfigError("ENAS_ADMINS is set but ENAS_AUTH_TOKENS is empty: admins need tokens")
    unknown = sorted(admin_names - {c.name for c in credentials})
    if unknown:
        raise AuthConfigError(f"ENAS_ADMINS names {', '.join(unknown)}, which no ENAS_AUTH_TOKENS item has")
    return Tokens(credentials, admin_names)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def check_exposure(tokens: Tokens, host: str, *, insecure: bool) -> None:
    """Refuse to listen on a non-loopback ``host`` without tokens, unless ``insecure``.

    Raises AuthConfigError saying what to do.
    """
    if tokens.enabled or insecure or is_loopback(host):
        return
    raise AuthConfigError(
        f"refusing to serve on {host} without ENAS_AUTH_TOKENS: anyone who reaches it could read and "
        "change every search. Set ENAS_AUTH_TOKENS ('name:token,...'), bind 127.0.0.1, or pass "
        "--insecure (ENAS_INSECURE=1) to serve without auth anyway"
    )


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token's name, or ``anonymous`` when auth is off.

    This is the one place that decides visibility: with tokens (``scoped``) a caller sees and
    changes only the searches it owns, an admin every search; without tokens everyone sees all.
    """

    name: str = ANONYMOUS
    admin: bool = False
    scoped: bool = False

    def sees(self, owner: str) -> bool:
        """Whether a search owned by ``owner`` exists for this caller (read and write alike)."""
        return not self.scoped or self.admin or owner == self.name

    @property
    def owner_filter(self) -> str | None:
        """The owner to filter lists by (None: every search)."""
        return self.name if self.scoped and not self.admin else None
