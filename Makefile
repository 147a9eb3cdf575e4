# Two commands for a fresh machine: `make run` (the whole loop on the embedded default) and
# `make test` (the suite). Both create or reuse .venv and install the pinned set themselves.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test run lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first and pinned, so that nothing else can pull another torch.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

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

clean:
	rm -rf var runs .pytest_cache
