"""Settings read from ENAS_* variables; SQLite connections get WAL and foreign keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from service.settings import Settings, get_settings
from service.store.db import make_engine, normalize_url


def test_paths_follow_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "ENAS_DATABASE_URL",
        "ENAS_ARTIFACT_DIR",
        "ENAS_DATA_DIR",
        "ENAS_REDIS_URL",
        "ENAS_AUTH_TOKENS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENAS_HOME", str(tmp_path))
    monkeypatch.setenv("ENAS_REDIS_URL", "")  # empty means unset
    monkeypatch.setenv("ENAS_RAY_NUM_CPUS", "2")
    s = Settings()
    assert s.home == tmp_path and s.database_url == f"sqlite:///{tmp_path / 'enas.db'}"
    assert s.artifact_dir == str(tmp_path / "artifacts") and s.data_dir == tmp_path / "data"
    assert (s.redis_url, s.ray_address, s.ray_num_cpus, s.tokens().enabled) == (None, None, 2, False)
    monkeypatch.setenv("ENAS_DATABASE_URL", "postgresql://u@db/enas")
    assert Settings().database_url == "postgresql://u@db/enas"


def test_get_settings_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("ENAS_HOME", str(tmp_path / "a"))
    first = get_settings()
    monkeypatch.setenv("ENAS_HOME", str(tmp_path / "b"))
    assert get_settings() is first and first.home == tmp_path / "a"
    get_settings.cache_clear()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # the folder is created
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    engine.dispose()
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
