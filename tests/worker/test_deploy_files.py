"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check that they say what the code
and the commands outside Docker expect."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from backend.queue import queue_names
from backend.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_compose_runs_the_same_commands_on_a_shared_volume() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "api", "worker"}
    api, worker = services["api"], services["worker"]
    env = api["environment"]
    assert env is worker["environment"] or env == worker["environment"]
    assert (
        env["SIPAT_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["SIPAT_DATABASE_URL"]
    )
    assert env["SIPAT_BROKER_URL"].startswith("redis://redis:6379/")
    for service in (api, worker):
        assert f"blobs:{env['SIPAT_DATA_DIR']}" in service["volumes"]
    assert re.fullmatch(
        r"alembic upgrade head && exec uvicorn --factory backend\.main:create_app --host 0\.0\.0\.0 --port 8000.*",
        api["command"][-1],
    )
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "worker.app", "worker"] and "--pool=solo" in command
    assert command[command.index("-Q") + 1] == ",".join(queue_names(Settings(secret_key="k" * 40)))
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"  # migrated before workers claim jobs


def test_dockerfile_installs_torch_free_api_and_the_pinned_worker() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", dockerfile, flags=re.S | re.M))
    assert "python:3.11-slim" in dockerfile and set(stages) == {"base", "api", "worker"}
    assert "pip install -c requirements.lock . " in stages["api"] and "torch" not in stages["api"].split("&&")[0]
    ml = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ml"]
    pins = [p for p in ml if p.startswith(("torch==", "torchvision=="))]
    assert len(pins) == 2 and all(p in stages["worker"] for p in pins)
    assert 'pip install -c requirements.lock ".[ml]"' in stages["worker"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert (
        compose["api"]["command"][-1] in stages["api"]
        and str(compose["worker"]["command"]).replace("'", '"') in stages["worker"]
    )
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "tests"} <= set(ignored)
