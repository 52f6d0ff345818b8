# The two front-door commands: `make reproduce` (the paper's study on the simulator)
# and `make test` (the whole suite). Each sets up its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
# Point at the study's data only where it exists: with none, the simulator path runs on
# the token-length profiles shipped in the package.
ifneq ($(wildcard $(SHARED)/datasets),)
export WORKLOAD_EVAL_DATA_DIR ?= $(SHARED)/datasets
endif
ifneq ($(wildcard $(SHARED)/tokenizers),)
export WORKLOAD_EVAL_TOKENIZER_DIR ?= $(SHARED)/tokenizers
endif

.PHONY: install install-test reproduce test lint clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Tests also need real vLLM on CPU, the hub libraries and Ray.
$(VENV)/.test: $(VENV)/.base scripts/install_test_extras.sh
	bash scripts/install_test_extras.sh $(PY)
	touch $@

install: $(VENV)/.base

install-test: $(VENV)/.test

reproduce: install
	$(VENV)/bin/workload-eval reproduce --out results/reproduce

test: install-test
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
