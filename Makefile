# `make repro` runs the pipeline, `make test` the tests; both set up .venv first (idempotent).
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup repro test lint
setup: $(VENV)/.installed

# torch first, pinned: the CPU wheel on this machine's disk, not a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
