"""Settings: embedded defaults resolved to absolute paths, the generated secret, placeholder refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import Settings, get_settings


def test_defaults_are_absolute_embedded_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("SIPAT_DATABASE_URL", "SIPAT_DATA_DIR", "SIPAT_BROKER_URL", "SIPAT_SECRET_KEY", "SIPAT_ENV"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    var = tmp_path.resolve() / "var"
    assert s.database_url == f"sqlite:///{var / 'sipat.db'}"
    assert s.broker_url == f"sqla+sqlite:///{var / 'broker.db'}" and s.broker_url.startswith("sqla+sqlite:////")
    assert s.data_dir == var / "data" and s.data_dir.is_absolute()
    assert s.port == 8000 and s.env == "development"


def test_secret_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPAT_SECRET_KEY", raising=False)
    first = Settings(data_dir=tmp_path / "data")
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.is_file() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(first.secret_key.get_secret_value()) >= 32
    second = Settings(data_dir=tmp_path / "data", env="production")
    assert second.secret_key.get_secret_value() == first.secret_key.get_secret_value()
    assert list((tmp_path / "data").iterdir()) == [key_file]  # no temp files left behind


def test_placeholder_secret_refused_in_production_warned_in_development(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(data_dir=tmp_path, secret_key="changeme", env="production")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(data_dir=tmp_path, secret_key="short", env="production")
    with pytest.warns(UserWarning, match="placeholder"):
        Settings(data_dir=tmp_path, secret_key="changeme", env="development")


def test_environment_prefix_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAT_DATABASE_URL", "postgresql+psycopg://u@db/sipat")
    monkeypatch.setenv("SIPAT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SIPAT_PORT", "9001")
    monkeypatch.setenv("SIPAT_PUBLIC_BASE_URL", "https://study.example.org/")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s is get_settings()
        assert s.database_url == "postgresql+psycopg://u@db/sipat" and s.port == 9001
        assert s.public_base_url == "https://study.example.org"
    finally:
        get_settings.cache_clear()


def test_relative_sqlite_urls_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(
        database_url="sqlite:///./db/x.db", broker_url="sqla+sqlite:///b.db", data_dir="d", secret_key="k" * 40
    )
    root = tmp_path.resolve()
    assert s.database_url == f"sqlite:///{root / 'db' / 'x.db'}"
    assert s.broker_url == f"sqla+sqlite:///{root / 'b.db'}"
    assert s.data_dir == root / "d"
    other = Settings(database_url="postgresql+psycopg://u@db/x", broker_url="redis://r:6379/0", secret_key="k" * 40)
    assert (other.database_url, other.broker_url) == ("postgresql+psycopg://u@db/x", "redis://r:6379/0")
