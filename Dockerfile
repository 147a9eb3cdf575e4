# syntax=docker/dockerfile:1
# Two images from one file, each installing a lock file of its own, every file checked against the sha256 that
# the lock holds (`pip install --require-hashes`; the locks come from `make lock`, see the Makefile):
#
#   docker build --target api    -t sipat-api .                              # requirements/api.lock: torch-free
#   docker build --target worker -t sipat-worker .                           # requirements/worker.lock: CUDA 13
#   docker build --target worker --build-arg TORCH_VARIANT=cpu -t sipat-worker-cpu .   # torch's CPU wheels
#
# Layers: the dependencies are installed from the lock files BEFORE the code is copied: a code change rebuilds
# only the last, small layers and never reinstalls torch.
# Commands (the same as outside Docker; docker-compose.yml runs them):
#   migrate: alembic upgrade head             (once, in its own service, before api and workers start)
#   api:     uvicorn --factory backend.main:create_app --host 0.0.0.0 --port 8000 --proxy-headers
#   worker:  celery -A worker.app worker -Q gpu,cpu --pool=solo      (one job at a time per GPU)
# Settings come from SIPAT_* variables; blobs live in SIPAT_DATA_DIR=/data, a volume every container mounts.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIPAT_DATA_DIR=/data
RUN useradd --create-home --uid 10001 sipat \
    && install -d -o sipat -g sipat /data
WORKDIR /app

FROM base AS api
# [web] of pyproject.toml alone, at requirements.lock's pins
COPY requirements/api.lock ./requirements/
RUN pip install --require-hashes -r requirements/api.lock
COPY pyproject.toml README.md alembic.ini ./
COPY sipat ./sipat
COPY backend ./backend
COPY worker ./worker
COPY study_frontend ./study_frontend
COPY migrations ./migrations
RUN pip install --no-deps . \
    && python -c "import backend.main, sys; sys.exit(any(m.startswith('torch') for m in sys.modules))"
USER sipat
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/ready', timeout=4)"]
CMD ["uvicorn", "--factory", "backend.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

FROM base AS worker
# cuda: PyPI's Linux wheels (CUDA 13 inside; the host needs an NVIDIA driver >= 580, see the README), hash-checked:
#   torch and torchvision with their CUDA libraries first (requirements/torch.lock), then the
#   base and [worker] groups (requirements/worker.lock, the same pins);
# cpu: the CPU-only wheels of download.pytorch.org at torch.in's pins (no CUDA libraries: a much smaller image).
#   Their files are not those of PyPI, whose hashes the locks hold, so this one step is checked by version only;
#   the rest is requirements/worker-cpu.lock (worker.lock without torch, torchvision and the CUDA libraries),
#   hash-checked, which also aligns the dependencies the CPU index brought to the lock's pins.
ARG TORCH_VARIANT=cuda
COPY requirements/torch.in requirements/torch.lock requirements/worker.lock requirements/worker-cpu.lock ./requirements/
RUN case "$TORCH_VARIANT" in \
        cuda) pip install --require-hashes -r requirements/torch.lock \
            && pip install --require-hashes -r requirements/worker.lock ;; \
        cpu) pip install --index-url https://download.pytorch.org/whl/cpu $(grep -E '^torch(vision)?==' requirements/torch.in) \
            && pip install --require-hashes -r requirements/worker-cpu.lock ;; \
        *) echo "TORCH_VARIANT must be cuda or cpu, not $TORCH_VARIANT" >&2; exit 1 ;; \
    esac \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
COPY pyproject.toml README.md alembic.ini ./
COPY sipat ./sipat
COPY backend ./backend
COPY worker ./worker
COPY study_frontend ./study_frontend
COPY migrations ./migrations
RUN pip install --no-deps .
USER sipat
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-m", "worker.healthcheck"]
CMD ["celery", "-A", "worker.app", "worker", "-Q", "gpu,cpu", "--pool=solo", "--loglevel=INFO"]
