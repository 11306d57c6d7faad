# The two commands a newcomer needs: `make test` and `make demo`.
# Each creates .venv with python3 -m venv when it is missing and installs
# the package with its dev extra, so a fresh machine needs only Python and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-slow lint typecheck demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check gossamer tests benchmarks examples
	$(BIN)/ruff format --check gossamer tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict gossamer

## make test: lint, type-check, and the default (fast) test suite
test: lint typecheck
	$(BIN)/python -m pytest

## make test-slow: the slow marks only (long simulations, large clusters)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

## make demo: a small cluster, narrated
demo: $(STAMP)
	$(BIN)/gossamer demo

## make bench: every benchmark, JSON on stdout
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.sim_throughput --json
	$(BIN)/python -m benchmarks.sim_throughput --json --trace
	$(BIN)/python -m benchmarks.swim_goals --seeds 20
	$(BIN)/python -m benchmarks.real_cluster --nodes 50 --json
	$(BIN)/python -m benchmarks.ring --json
	$(BIN)/python -m benchmarks.overlay_paper --nodes 1000
	$(BIN)/python -m benchmarks.crdt --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
