"""Links follow the server: `http://localhost:<SIPAT_PORT>` unless SIPAT_PUBLIC_BASE_URL is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import links
from backend.settings import Settings

SECRET = "links-test-secret-" + "z" * 40


def test_links_use_the_port_the_server_runs_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPAT_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("SIPAT_PORT", "8123")
    settings = Settings(data_dir=tmp_path, secret_key=SECRET)
    assert settings.port == 8123 and settings.public_base_url == "http://localhost:8123"
    assert links.participant_url(settings, "demo") == "http://localhost:8123/s/demo"
    assert links.prolific_url(settings, "demo").startswith("http://localhost:8123/s/demo?PROLIFIC_PID={{%")


def test_an_explicit_public_base_url_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAT_PORT", "8123")
    monkeypatch.setenv("SIPAT_PUBLIC_BASE_URL", "https://study.example.org/")
    settings = Settings(data_dir=tmp_path, secret_key=SECRET)
    assert links.participant_url(settings, "demo") == "https://study.example.org/s/demo"
    assert Settings(data_dir=tmp_path, secret_key=SECRET, public_base_url="http://localhost:8000").public_base_url == (
        "http://localhost:8000"
    )  # set explicitly, even to the old default: kept
