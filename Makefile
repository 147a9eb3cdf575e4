# Two commands for a fresh machine: `make run` (the whole loop on the embedded default) and
# `make test` (the suite). Both create or reuse .venv and install the pinned set themselves.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test run lint format bench clean chromium

CHROMIUM ?= /usr/bin/chromium

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first and pinned, so that nothing else can pull another torch.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# The browser tests drive Debian's Chromium (Playwright cannot download its own here); install it when
# missing and we are root, otherwise they skip (and fail in CI).
chromium:
	@test -x $(CHROMIUM) || [ "$$(id -u)" != 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Two processes for the bulk of the suite, with line coverage of sipat, backend and worker (the report's summary
# is printed; `coverage html` makes the browsable one). The fault tests restart PostgreSQL and Redis, so they run
# alone afterwards; if they select nothing (exit 5) that is a failure, not a pass.
test: install chromium
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not faults" -n 2 --cov --cov-report=term:skip-covered $(PYTEST_ARGS)
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

run: install
	$(PY) -m backend.devserver

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/stimuli.py

clean:
	rm -rf var runs .pytest_cache
