# `make repro` runs the pipeline, `make test` the tests (`make test-fast`: all but the slow ones); each sets up
# .venv first (idempotent).
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup repro test test-fast lint compare study paper dvc-deps
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
# and PA-MPJPE (metrics/summary.json); per-variant details, the paired comparisons (metrics/comparison.json:
# paired.*), the training curves' latest values (plots/) and code/data hashes are dropped.
# --keep shields the summary columns (`<variant>.pose`, `<variant>.pa`; prefixed with their file when a
# name collides) from --only-changed, so they show even when every row agrees (a fresh clone); the
# look-ahead leaves out the param loss.pose. Deps are paths: a folder (predictions) or under one.
EXP_TABLE := --only-changed --keep '(metrics/summary\.json:)?(?!loss\.)[^/:.]+\.(pose|pa)$$' \
	--drop 'Created|metrics/(?!summary).*|(configs|data|models|predictions|plots|src)(/.*)?$$|paired\..*|held_out_uv_error_px|loss_hm|samples_seen|lr$$'
compare:
	PATH="$(abspath $(BIN)):$$PATH" dvc exp show --no-pager $(EXP_TABLE)

# The four variants over three seeds, as a DVC experiment in a temporary copy (the workspace is left
# as it is); its table (mean +- sd over seeds, beside the paper's) goes to docs/study.md.
STUDY_SEEDS ?= [0,1,2]
study: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run --temp --force --name seeds -S 'train.seed=$(STUDY_SEEDS)'
	mkdir -p docs
	git show "$$(git for-each-ref --sort=-creatordate --count=1 --format='%(refname)' 'refs/exps/*/*/seeds')":metrics/summary.md > docs/study.md
	sed -i.bak '1s/^# Results$$/# Study: every variant over seeds $(STUDY_SEEDS)/' docs/study.md && rm docs/study.md.bak
	@cat docs/study.md

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

# The edit loop's tier: every test but those marked slow (DVC projects, benchmark scripts, multi-process jobs).
test-fast: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -m "not slow"

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# dvc.yaml's code deps from the import graph (tools/dvc_deps.py): run it after adding an import.
dvc-deps: setup
	$(BIN)/python tools/dvc_deps.py

# The paper's experiment on real FreiHAND v2 (a GPU job: `train.device: auto` takes a CUDA GPU when there
# is one): 3200 training poses (version 0) and the next 200 as the test, 100 epochs, 256 px input, 256
# features, RMSprop 1e-4 / 10 at epoch 50, argmax 2D joints, m_asm at batch 25, no pretraining, each test
# image seen once. The `data` stage downloads FreiHAND_pub_v2.zip (3.7 GB) to data/raw/ once. The
# experiment is named `paper`.
PAPER_PARAMS := -S data.source=freihand -S data.split=paper -S 'data.versions=[0]' -S data.n_train=3200 \
	-S data.n_test=200 -S train.epochs=100 -S train.lr=1e-4 -S train.lr_drop_at=0.5 -S model.input_size=256 \
	-S model.hourglass.features=256 -S heatmap.sigma=2 -S model.mlp_width=1024 -S model.mlp_depth=2 \
	-S 'model.dropout=[0.3,0.4]' -S model.uv=argmax -S '+variant_train.m_asm.batch_size=25' -S pretrain.n_hands=0 \
	-S 'evaluate.rolls=[0]' -S 'evaluate.zooms=[1]'
paper: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run --name paper $(PAPER_PARAMS)
