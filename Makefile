# Two commands for a fresh machine: `make run` (the whole loop on the embedded default) and
# `make test` (the suite). Both create or reuse .venv and install the pinned set themselves.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test run lint format bench clean chromium fashion mutate

CHROMIUM ?= /usr/bin/chromium

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@echo "make: installing into $(VENV) (first run: several minutes; later runs skip this until pyproject.toml or requirements.lock change)"
	@test -x $(PY) || { echo "creating the virtual environment $(VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "upgrading pip ..."
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first and pinned, so that nothing else can pull another torch.
	@echo "installing torch and torchvision (~1 GB download the first time; the slowest step) ..."
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	@echo "installing the pinned packages of requirements.lock (FastAPI, SQLAlchemy, Celery, ...) ..."
	$(PY) -m pip install --quiet -r requirements.lock
	@echo "installing this project (sipat, backend, worker; editable) ..."
	$(PY) -m pip install --quiet --no-deps -e .
	# Test-only cross-checks and optional architectures, without their dependency pins (torchattacks pins old
	# requests/numpy; timm would pull huggingface_hub, which nothing here uses offline).
	@echo "installing torchattacks and timm (test cross-checks, optional architectures) ..."
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1 timm==1.0.31
	@touch $(STAMP)
	@echo "make: installed"

# The browser tests drive Debian's Chromium (Playwright cannot download its own here); install it when
# missing and we are root, otherwise they skip (and fail in CI).
chromium:
	@test -x $(CHROMIUM) || [ "$$(id -u)" != 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Fashion-MNIST (issue 21's `fashion` set) comes from Debian's dataset-fashion-mnist: installed when missing
# and we are root, otherwise its tests skip (and fail in CI).
FASHION ?= /usr/share/datasets/fashion-mnist
fashion:
	@test -d $(FASHION) || [ "$$(id -u)" != 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; }

# Lint, format and types (mypy over sipat, backend, worker: no errors) first. Two processes for the bulk of the suite, with line coverage of sipat, backend and worker (the report's summary
# is printed; `coverage html` makes the browsable one). The fault tests restart PostgreSQL and Redis, so they run
# alone afterwards; if they select nothing (exit 5) that is a failure, not a pass.
test: install chromium fashion
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy sipat backend worker
	$(PY) -m pytest -m "not faults" -n 2 --cov --cov-report=term:skip-covered $(PYTEST_ARGS)
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

run: install
	@echo "make: starting the development server, a worker and the demo study (backend/devserver.py); it prints the links, then 'demo ready' once the demo's images exist"
	$(PY) -m backend.devserver

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy sipat backend worker

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/stimuli.py

# Mutation testing of the method core with mutmut (slow, so not part of `make test`); the scope and the test
# selection are [tool.mutmut] in pyproject.toml, the score and the surviving mutants in docs/testing.md.
# `make mutate SCOPE=apgd` (apgd, apgd_t, autoattack, square, checks, registry, fab) runs one module against
# its own tests in var/mutate/<scope>/ (scripts/mutate_scope.py): the command behind each per-module number.
SCOPE ?=
mutate: install
	$(PY) -m pip install --quiet mutmut==3.8.1
ifneq ($(SCOPE),)
	nice -n 15 $(PY) scripts/mutate_scope.py $(SCOPE)
else
	rm -rf mutants
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results
endif

clean:
	rm -rf var runs .pytest_cache
