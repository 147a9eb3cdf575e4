"""Fixtures of the browser tests: the real service in a uvicorn subprocess, Debian's Chromium through Playwright.

* Database: SQLite by default; PostgreSQL (a schema of its own, dropped afterwards) when
  `SIPAT_TEST_POSTGRES_URL` is set, as in CI. Each server gets a fresh, migrated database and data dir.
* Chromium: `/usr/bin/chromium` (`make test` installs it when missing and it may). Without it these tests skip
  with the reason, except in CI, where they fail.
* Screenshots of every page go to `test-artifacts/screenshots/` (gitignored).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.db import make_engine, make_session_factory
from backend.migrate import upgrade
from backend.storage import LocalBlobStore
from tests.backend.fixtures import fresh_schema
from tests.browser.driver import PageWatch
from tests.netkit import free_port, serving, uvicorn_cmd

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("SIPAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TEST_SECRET = "browser-test-secret-" + "x" * 32


# --- the service -----------------------------------------------------------------------------------------


class LiveServer:
    """`uvicorn --factory backend.main:create_app` on a fixed port; stop() and start() again on the same port
    (one log across restarts)."""

    def __init__(self, database_url: str, data_dir: Path, log_path: Path) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._running: ExitStack | None = None
        self.storage = LocalBlobStore(data_dir / "blobs", durable=False)
        self.engine: Engine = make_engine(database_url)
        self.sessions = make_session_factory(self.engine)

    def start(self) -> None:
        env = {
            **os.environ,
            "SIPAT_DATABASE_URL": self.database_url,
            "SIPAT_DATA_DIR": str(self.data_dir),
            "SIPAT_SECRET_KEY": TEST_SECRET,
            "SIPAT_ENV": "development",
        }
        cmd = uvicorn_cmd("backend.main:create_app", self.port)
        running = ExitStack()
        running.enter_context(
            serving(cmd, env=env, log=self.log_path, ready_url=f"{self.url}/api/v1/health", append=True)
        )
        self._running = running

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); connections are refused until start()."""
        if self._running is not None:
            self._running.close()
            self._running = None

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.stop()
        self.engine.dispose()


@pytest.fixture(scope="session")
def database_base_url(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL URL (tests/conftest.py's `postgres_url`) when SIPAT_TEST_POSTGRES_URL is set; else None."""
    if os.environ.get("SIPAT_TEST_POSTGRES_URL"):
        return request.getfixturevalue("postgres_url")
    return None


@contextmanager
def _database(tmp: Path, postgres_url: str | None) -> Iterator[str]:
    """URL of a fresh migrated database: a schema of its own in PostgreSQL, else a SQLite file under `tmp`."""
    if postgres_url:
        with fresh_schema(postgres_url) as url:
            upgrade(url)
            yield url
        return
    url = f"sqlite:///{tmp / 'sipat.db'}"
    upgrade(url)
    yield url


@contextmanager
def live_server_at(tmp: Path, postgres_url: str | None) -> Iterator[LiveServer]:
    with ExitStack() as stack:
        url = stack.enter_context(_database(tmp, postgres_url))
        server = LiveServer(url, tmp / "data", tmp / "uvicorn.log")
        stack.callback(server.close)
        server.start()
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, chromium_path: str, database_base_url: str | None
) -> Iterator[LiveServer]:
    """One service for the tests of a module (each test seeds its own study)."""
    with live_server_at(tmp_path_factory.mktemp("live"), database_base_url) as live:
        yield live


@pytest.fixture
def own_server(tmp_path: Path, chromium_path: str, database_base_url: str | None) -> Iterator[LiveServer]:
    """A service of this test alone (for tests that stop and restart it)."""
    with live_server_at(tmp_path, database_base_url) as live:
        yield live


# --- the browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        message = f"browser tests need Chromium at {CHROMIUM} (`apt-get install -y chromium`; `make test` does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    if importlib.util.find_spec("playwright") is None:
        message = "browser tests need the playwright package (`pip install -r requirements.lock`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def slug() -> str:
    return f"b{secrets.token_hex(4)}"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Any:
    """`shots(page, name)` saves test-artifacts/screenshots/<test>-<name>.png (full page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{prefix}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


DESKTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """`new_page(**context_options)` -> (page, PageWatch) in a fresh desktop-sized context of its own (options
    override `DESKTOP`); the contexts are closed after the test."""
    contexts = []

    def make(**options: Any) -> tuple[Any, PageWatch]:
        context = browser.new_context(**{**DESKTOP, **options})
        contexts.append(context)
        page = context.new_page()
        return page, PageWatch().attach(page)

    yield make
    for context in contexts:
        context.close()
