# The two commands of the README: `make dev` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev ui test test-fast lint seed bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## make dev: install, seed demo data, start the simulator and the Dagster UI (sensors on)
dev: install
	mkdir -p data
	./scripts/dev.sh

## make ui: only the Dagster UI (daemon, sensors) on LANDING_URI/LAKE_URI, with the project's
## instance settings (DAGSTER_HOME defaults to data/dagster_home); no demo data
ui: install
	$(VENV)/bin/python -m orchestration.launch dev -h 127.0.0.1 -p $${DAGSTER_PORT:-3000}

## make test: install, then every test (unit, dagster, S3 over HTTP, end-to-end dagster dev)
test: install
	$(VENV)/bin/python -m pytest

test-fast: install
	$(VENV)/bin/python -m pytest -m "not e2e"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## make seed: the demo history of `make dev` (same rates, same marker): once per lake;
## `make clean` first to seed again
seed: install
	$(VENV)/bin/python -m lake.simulator.demo seed --hours $${SEED_HOURS:-3}

clean:
	rm -rf data .pytest_cache
