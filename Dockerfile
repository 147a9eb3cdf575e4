# syntax=docker/dockerfile:1
# Two images from one file, installed the way `make install` installs (versions from requirements.lock,
# used as pip constraints, so nothing resolves differently inside and outside Docker):
#
#   docker build --target api    -t sipat-api .     # pip install .       the web service, torch-free
#   docker build --target worker -t sipat-worker .  # pip install .[ml]   + torch 2.14.1 / torchvision 0.29.1
#                                                   #                      (PyPI's Linux wheels: CUDA 13 inside)
# Commands (the same as outside Docker; docker-compose.yml runs them):
#   api:    alembic upgrade head && uvicorn --factory backend.main:create_app --host 0.0.0.0 --port 8000
#   worker: celery -A worker.app worker -Q gpu,cpu --pool=solo      (one job at a time per GPU)
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
COPY requirements.lock pyproject.toml README.md alembic.ini ./
COPY sipat ./sipat
COPY backend ./backend
COPY worker ./worker
COPY study_frontend ./study_frontend
COPY migrations ./migrations

FROM base AS api
RUN pip install -c requirements.lock . \
    && python -c "import backend.main, sys; sys.exit(any(m.startswith('torch') for m in sys.modules))"
USER sipat
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)"]
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn --factory backend.main:create_app --host 0.0.0.0 --port 8000 --proxy-headers"]

FROM base AS worker
# torch and torchvision first and pinned, as in the Makefile, so that nothing else can pull another torch.
RUN pip install -c requirements.lock torch==2.14.1 torchvision==0.29.1 \
    && pip install -c requirements.lock ".[ml]"
USER sipat
CMD ["celery", "-A", "worker.app", "worker", "-Q", "gpu,cpu", "--pool=solo", "--loglevel=INFO"]
