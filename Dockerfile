# syntax=docker/dockerfile:1
# Two images from one file, with the versions of requirements.lock (pip constraints), as `make install` pins them:
#
#   docker build --target api    -t sipat-api .                              # [web] only: torch-free
#   docker build --target worker -t sipat-worker .                           # base + [worker]: torch with CUDA 13
#   docker build --target worker --build-arg TORCH_VARIANT=cpu -t sipat-worker-cpu .   # torch's CPU wheels
#
# Layers: the dependencies are installed from requirements.lock and the dependency lists of pyproject.toml
# (extracted in the `requirements` stage, so that editing pyproject's tool settings changes nothing) BEFORE the
# code is copied: a code change rebuilds only the last, small layers and never reinstalls torch.
# Commands (the same as outside Docker; docker-compose.yml runs them):
#   migrate: alembic upgrade head             (once, in its own service, before api and workers start)
#   api:     uvicorn --factory backend.main:create_app --host 0.0.0.0 --port 8000 --proxy-headers
#   worker:  celery -A worker.app worker -Q gpu,cpu --pool=solo      (one job at a time per GPU)
# Settings come from SIPAT_* variables; blobs live in SIPAT_DATA_DIR=/data, a volume every container mounts.

ARG PYTHON_IMAGE=python:3.11-slim

# The groups of pyproject.toml as requirement files: base.txt (the method library), web.txt (the API).
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /req
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
open('base.txt', 'w').write('\n'.join(p['dependencies']) + '\n'); \
open('web.txt', 'w').write('\n'.join(p['optional-dependencies']['web']) + '\n')"

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIPAT_DATA_DIR=/data
RUN useradd --create-home --uid 10001 sipat \
    && install -d -o sipat -g sipat /data
WORKDIR /app
COPY requirements.lock ./

FROM base AS api
COPY --from=requirements /req/web.txt ./requirements/
RUN pip install -c requirements.lock -r requirements/web.txt
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
# cuda: PyPI's Linux wheels (CUDA 13 inside; the host needs an NVIDIA driver >= 580, see the README);
# cpu: the CPU-only wheels of download.pytorch.org (no CUDA libraries: a much smaller image).
ARG TORCH_VARIANT=cuda
COPY --from=requirements /req/base.txt /req/web.txt ./requirements/
# torch and torchvision first, at base.txt's pins, so that nothing else can pull another torch.
# (The CPU index carries torch's own dependencies too, at its versions; the second step aligns them to the lock.)
RUN case "$TORCH_VARIANT" in \
        cuda) index="-c requirements.lock" ;; \
        cpu) index="--index-url https://download.pytorch.org/whl/cpu" ;; \
        *) echo "TORCH_VARIANT must be cuda or cpu, not $TORCH_VARIANT" >&2; exit 1 ;; \
    esac \
    && pip install $index $(grep -E '^torch(vision)?==' requirements/base.txt) \
    && pip install -c requirements.lock -r requirements/base.txt -r requirements/web.txt \
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
