# envspec developer tasks. Everything runs from the project's own files on a fresh machine:
# `make test` and `make demo` create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Isolate from any machine-wide pip/uv configuration (constraints, extra indexes).
export PIP_CONFIG_FILE := /dev/null
export UV_NO_CONFIG := 1
unexport PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT UV_INDEX_URL UV_EXTRA_INDEX_URL

.PHONY: install test test-hermetic test-network lint bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	VIRTUAL_ENV=$(VENV) $(BIN)/uv pip install --no-config --quiet -e '.[dev]'
	touch $@

test: install
	$(BIN)/pytest -m "network or not network" -q

test-hermetic: install
	$(BIN)/pytest -m "not network" -q

test-network: install
	$(BIN)/pytest -m network -q

lint: install
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/bench_lock.py
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_bundle.py

demo: install
	$(BIN)/python demo/demo.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
