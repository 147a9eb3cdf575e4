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


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def dockerfile_stages() -> dict[str, str]:
    dockerfile = (REPO / "Dockerfile").read_text()
    return dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", dockerfile, flags=re.S | re.M))


def test_compose_runs_the_same_commands_on_a_shared_volume() -> None:
    services = compose()
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    api, worker = services["api"], services["worker"]
    env = api["environment"]
    assert {k: v for k, v in worker["environment"].items() if k in env} == env  # the worker's adds to it
    assert (
        env["SIPAT_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["SIPAT_DATABASE_URL"]
    )
    assert env["SIPAT_BROKER_URL"].startswith("redis://redis:6379/")
    for service in (api, worker):
        assert f"blobs:{env['SIPAT_DATA_DIR']}" in service["volumes"]
    assert " ".join(api["command"]).startswith("uvicorn --factory backend.main:create_app --host 0.0.0.0 --port 8000")
    command = worker["command"]
    assert command[:4] == ["celery", "-A", "worker.app", "worker"] and "--pool=solo" in command
    assert command[command.index("-Q") + 1] == ",".join(queue_names(Settings(secret_key="k" * 40)))
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_migrations_run_once_in_their_own_service_before_api_and_workers() -> None:
    services = compose()
    migrate = services["migrate"]
    assert migrate["command"] == ["alembic", "upgrade", "head"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["environment"] == services["api"]["environment"] and migrate["build"]["target"] == "api"
    for name in ("api", "worker"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert "alembic" not in " ".join(service["command"]), name  # nobody else migrates (no race on scale-up)


def test_worker_is_health_checked_and_hands_its_job_back_when_stopped() -> None:
    worker = compose()["worker"]
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.healthcheck"]
    env = worker["environment"]
    assert env["REMAP_SIGTERM"] == "SIGQUIT"  # docker stop's SIGTERM -> cold shutdown with the soft timeout
    soft = float(env["SIPAT_WORKER_SOFT_SHUTDOWN_S"].split(":-")[-1].rstrip("}"))
    grace = int(worker["stop_grace_period"].rstrip("m")) * 60
    assert 0 < soft < grace  # the job is handed back before Docker's SIGKILL
    visibility = float(env["SIPAT_BROKER_VISIBILITY_TIMEOUT_S"].split(":-")[-1].rstrip("}"))
    assert visibility >= 24 * 3600
    assert Settings(secret_key="k" * 40, broker_visibility_timeout_s=visibility).broker_visibility_timeout_s


def test_dockerfile_installs_locked_dependencies_before_the_code() -> None:
    stages = dockerfile_stages()
    assert "python:3.11-slim" in (REPO / "Dockerfile").read_text()
    assert set(stages) == {"base", "api", "worker"}
    for name in ("api", "worker"):
        body = stages[name]
        first_code_copy = body.index("COPY sipat ")
        installs = [m.start() for m in re.finditer(r"pip install", body)]
        deps = [i for i in installs if i < first_code_copy]
        assert deps and "--require-hashes -r requirements/" in body[deps[-1] : first_code_copy], name
        # after the code: only the project itself, without dependencies (a code change reinstalls nothing else)
        assert all(body[i:].startswith("pip install --no-deps .") for i in installs if i > first_code_copy), name
        assert "COPY pyproject.toml" not in body[: deps[-1]], name  # the dependencies come from the locks alone
        for lock in re.findall(r"-r (requirements/\S+\.lock)", body):
            assert (REPO / lock).is_file() and body.index(lock) < body.index("RUN "), (name, lock)  # copied first
    assert "--require-hashes -r requirements/api.lock" in stages["api"]
    worker = stages["worker"]
    assert "--require-hashes -r requirements/torch.lock" in worker
    assert "--require-hashes -r requirements/worker.lock" in worker
    assert "--require-hashes -r requirements/worker-cpu.lock" in worker


def _pins(lock: str) -> dict[str, str]:
    """name -> version of a lock file (uv's `name==version \\` lines with their `--hash` lines below)."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: \\)?$", (REPO / lock).read_text(), flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def test_every_lock_pins_with_hashes_and_agrees_with_requirements_lock() -> None:
    full = _pins("requirements.lock")
    for lock in ("requirements.lock", *(str(p.relative_to(REPO)) for p in (REPO / "requirements").glob("*.lock"))):
        text = (REPO / lock).read_text()
        pins = _pins(lock)
        assert pins, lock
        # every pin carries at least one sha256 (pip --require-hashes refuses the file otherwise)
        assert text.count("==") <= text.count("--hash=sha256:"), lock
        assert "uv pip compile" in text.splitlines()[1], lock  # generated by `make lock`, not by hand
        if lock != "requirements/nodeps.lock":
            assert {n: v for n, v in pins.items() if full.get(n) != v} == {}, lock


def test_api_is_torch_free_and_the_worker_has_a_cpu_variant() -> None:
    stages = dockerfile_stages()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    api = _pins("requirements/api.lock")
    assert not {n for n in api if n in {"torch", "torchvision", "triton"} or n.startswith(("nvidia-", "cuda-"))}
    assert {"fastapi", "uvicorn", "sqlalchemy", "celery", "limits", "argon2-cffi"} <= set(api)
    assert "torch" not in stages["api"].split("COPY pyproject.toml")[0]
    pins = [p for p in project["dependencies"] if p.startswith(("torch==", "torchvision=="))]
    torch_in = [line for line in (REPO / "requirements/torch.in").read_text().splitlines() if "==" in line]
    assert sorted(pins) == sorted(torch_in)  # the CPU variant's grep reads the same pins as pyproject's
    assert {"torch", "torchvision"} <= set(_pins("requirements/torch.lock")) <= set(_pins("requirements/worker.lock"))
    cpu = _pins("requirements/worker-cpu.lock")
    assert {"captum", "celery"} <= set(cpu) and not {n for n in cpu if n.startswith(("torch", "nvidia-", "cuda-"))}
    worker = stages["worker"]
    assert "ARG TORCH_VARIANT=cuda" in worker and "https://download.pytorch.org/whl/cpu" in worker
    assert "grep -E '^torch(vision)?==' requirements/torch.in" in worker
    services = compose()
    assert services["worker"]["build"]["args"]["TORCH_VARIANT"] == "${SIPAT_TORCH_VARIANT:-cuda}"
    assert " ".join(services["api"]["command"]) in stages["api"].replace('", "', " ")
    assert str(services["worker"]["command"]).replace("'", '"') in worker
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "tests"} <= set(ignored)
