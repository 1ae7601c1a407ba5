# Two commands on a fresh machine: `make run` and `make test`.
# Dependencies come from the lock files in requirements/ (made by
# `make lock` from pyproject.toml); `make run` installs the runtime set only.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# pytest-xdist workers: one per core unless told otherwise.
TEST_WORKERS ?= auto

.PHONY: run test test-fast lint typecheck bench demo lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): $(BIN)/python requirements/runtime.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements/runtime.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP) requirements/dev.txt
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(DEV_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/ledger serve --demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Lint and type checks side by side, then every test on every core
# (pytest-xdist: each worker has a PostgreSQL of its own), naming the 25
# slowest so the suite's time stays in view.
test: $(DEV_STAMP)
	$(MAKE) --no-print-directory -j 2 lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

# The layers that need no database, in under a minute. The Schemathesis
# module is left out, not just deselected (it builds its cases at
# collection), and so is its plugin (seconds of imports in every worker).
test-fast: $(DEV_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not postgres" -p no:schemathesis \
		--ignore=tests/contract/test_openapi_schemathesis.py tests/unit tests/property tests/contract

bench: $(DEV_STAMP)
	$(BIN)/ledger bench

demo: $(RUNTIME_STAMP)
	$(BIN)/ledger demo

# Re-resolve the lock files after changing dependencies in pyproject.toml.
lock:
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header --quiet \
		-o requirements/runtime.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header --quiet \
		-o requirements/dev.txt

clean:
	rm -rf $(VENV) .ledger .pytest_cache .mypy_cache .ruff_cache .hypothesis
