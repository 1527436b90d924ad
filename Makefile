# The two set-up commands: `make run` (the nightly pipeline) and `make test`.
# Both create .venv on first use. torch is installed first and pinned to the CPU build,
# so nothing pulls a multi-GB CUDA build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LLMOPS_HOME ?= $(CURDIR)/.llmops

.PHONY: install run where test ui prefect-server stop bench bench-train clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch ' + v + ' replaced the pinned 2.13.0')"
	touch $(STAMP)

# Starts (or reuses) the Prefect server of $(LLMOPS_HOME); it keeps running for the next run and
# its UI until it has been unused for LLMOPS_PREFECT_IDLE_MINUTES (default 60), or `make stop`
# (see docs/local-server.md). Ends by saying where the tools and that UI are.
run: $(STAMP)
	$(BIN)/llmops nightly --config configs/nightly.yaml
	@$(MAKE) --no-print-directory where

# Where `llmops` and `prefect` are (the venv's bin, not on PATH) and this home's Prefect UI.
where:
	@echo "llmops and prefect are in $(abspath $(BIN))/ (not on PATH): run $(BIN)/llmops COMMAND, or first: . $(BIN)/activate"
	@$(BIN)/python -m llmops.server

# Lint and import order first (ruff, configured in pyproject.toml; `ruff format .` fixes the layout),
# then the tests. Test files run on up to 4 worker processes (pytest-xdist), each file whole on one
# worker: the slow ones mostly wait on servers they started. `pytest -q` alone runs them in turn.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n auto --maxprocesses 4 --dist loadfile

ui: $(STAMP)
	@echo "MLflow UI: http://127.0.0.1:5000   (Ctrl-C to stop)"
	@echo "Prefect UI: the address in $(LLMOPS_HOME)/prefect/server.json (the server 'make run' started)"
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(LLMOPS_HOME)/mlflow.db" --host 127.0.0.1 --port 5000 --workers 1

prefect-server: $(STAMP)
	PREFECT_HOME=$(LLMOPS_HOME)/prefect $(BIN)/prefect server start --host 127.0.0.1

stop: $(STAMP)
	$(BIN)/llmops stop

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

# The project's SFT against plain TRL; tiny on a CPU. On a GPU: bench/gpu/README.md (SHAPE=llama-8b ARGS="--packing").
bench-train: $(STAMP)
	$(BIN)/python bench/train.py --shape $(or $(SHAPE),tiny) $(ARGS)

clean:
	-test ! -x $(BIN)/llmops || $(BIN)/llmops stop --force
	rm -rf $(LLMOPS_HOME)
