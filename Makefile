# Two commands for a fresh machine: `make run` (the whole loop on the embedded default) and
# `make test` (the suite). Both create or reuse .venv and install the pinned set themselves.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
LOCKS  := requirements.lock requirements/torch.lock requirements/nodeps.lock
# `make lock`: uv, in a throwaway environment of its own
LOCKTOOL   ?= /tmp/locktool
UV_VERSION ?= 0.13.9
UV         := $(LOCKTOOL)/bin/uv
UV_COMPILE := $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--no-emit-package sipat-platform
UPGRADE    ?=

.PHONY: install lock test run lint format bench clean chromium fashion mutate

CHROMIUM ?= /usr/bin/chromium

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCKS)
	@echo "make: installing into $(VENV) (first run: several minutes; later runs skip this until pyproject.toml or a lock file change)"
	@test -x $(PY) || { echo "creating the virtual environment $(VENV) with $(PYTHON) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "upgrading pip ..."
	$(PY) -m pip install --quiet --upgrade pip
	# Every step below installs pinned files whose sha256 the lock files hold (--require-hashes): a file that was
	# swapped on an index, or a pin that the lock misses, stops the install. `make lock` regenerates them.
	# torch and torchvision first (with their CUDA libraries), at the lock's pins: the largest, slowest step.
	@echo "installing torch and torchvision (~1 GB download the first time; the slowest step) ..."
	$(PY) -m pip install --quiet --require-hashes -r requirements/torch.lock
	@echo "installing the pinned packages of requirements.lock (FastAPI, SQLAlchemy, Celery, ...) ..."
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	@echo "installing this project (sipat, backend, worker; editable) ..."
	$(PY) -m pip install --quiet --no-deps -e .
	# Test-only cross-checks and optional architectures, without their dependency pins (requirements/nodeps.in).
	@echo "installing torchattacks and timm (test cross-checks, optional architectures) ..."
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/nodeps.lock
	@touch $(STAMP)
	@echo "make: installed"

# The lock files, with the sha256 of every file of each pinned release, resolved by uv from the declared
# dependencies (pyproject.toml; requirements/*.in) for CPython 3.11 on x86-64 Linux. Existing pins are kept;
# `make lock UPGRADE=--upgrade` moves every pin to the newest release allowed. uv is installed into its own
# throwaway environment ($(LOCKTOOL)), never into the project's.
#   requirements.lock         base + [worker] + [web] + [dev]: what `make install` (tests, CI) installs
#   requirements/torch.lock   torch and torchvision with their dependencies, at requirements.lock's pins
#   requirements/api.lock     [web] alone (read from pyproject.toml), at requirements.lock's pins: the torch-free API image
#   requirements/worker.lock  base + [worker], at requirements.lock's pins: the worker image
#   requirements/worker-cpu.lock  the same without torch, torchvision and their CUDA libraries: the CPU-only worker
#                             image installs those two from PyTorch's CPU index first (not hash-checked: see Dockerfile)
#   requirements/nodeps.lock  torchattacks and timm, installed without their dependencies
lock:
	@test -x $(UV) || { $(PYTHON) -m venv $(LOCKTOOL) && $(LOCKTOOL)/bin/pip install --quiet uv==$(UV_VERSION); }
	$(UV_COMPILE) $(UPGRADE) pyproject.toml --extra worker --extra dev -o requirements.lock
	$(UV_COMPILE) requirements/torch.in -c requirements.lock -o requirements/torch.lock
	$(PYTHON) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['web']))" \
		| $(UV_COMPILE) - -c requirements.lock -o requirements/api.lock
	$(UV_COMPILE) pyproject.toml --extra worker -c requirements.lock -o requirements/worker.lock
	$(UV_COMPILE) pyproject.toml --extra worker -c requirements.lock -o requirements/worker-cpu.lock \
		$$(grep -oE '^(torch|torchvision|triton|cuda-[a-z-]+|nvidia-[a-z0-9-]+)==' requirements/worker.lock \
			| sed 's/==$$//; s/^/--no-emit-package /')
	$(UV_COMPILE) $(UPGRADE) requirements/nodeps.in --no-deps -o requirements/nodeps.lock

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
	$(PY) -m benchmarks.attacks
	$(PY) -m benchmarks.training
	$(PY) -m benchmarks.stimuli

# Mutation testing of the method core with mutmut (slow, so not part of `make test`); the scope and the test
# selection are [tool.mutmut] in pyproject.toml, the score and the surviving mutants in docs/testing.md.
# `make mutate SCOPE=apgd` (apgd, apgd_t, autoattack, square, checks, registry, evaluation, fab) runs one module against
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
