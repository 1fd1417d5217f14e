# `make repro` runs the pipeline, `make test` the tests; both set up .venv first (idempotent).
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup repro test lint compare study
setup: $(VENV)/.installed .dvc/plots/offline.html

# torch first, pinned: the CPU wheel on this machine's disk, not a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# `dvc plots show` uses this page (see .dvc/config): Vega inlined, so it renders offline.
.dvc/plots/offline.html: $(VENV)/.installed
	$(BIN)/handpose plots-template --out $@

repro: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# The experiment table that fits a terminal: the params that changed, and per variant its pose error
# and PA-MPJPE (metrics/summary.json); per-variant details and code/data hashes are dropped.
EXP_TABLE := --only-changed --drop 'Created|metrics/(?!summary).*|(configs|data|models|predictions|plots|src)/.*'
compare:
	PATH="$(abspath $(BIN)):$$PATH" dvc exp show --no-pager $(EXP_TABLE)

# The four variants over three seeds, as a DVC experiment in a temporary copy (the workspace is left
# as it is); its table (mean +- sd over seeds, beside the paper's) goes to docs/study.md.
STUDY_SEEDS ?= [0,1,2]
study: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run --temp --force --name seeds -S 'train.seed=$(STUDY_SEEDS)'
	mkdir -p docs
	git show "$$(git for-each-ref --sort=-creatordate --count=1 --format='%(refname)' 'refs/exps/*/*/seeds')":metrics/summary.md > docs/study.md
	@cat docs/study.md

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
