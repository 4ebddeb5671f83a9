# The two commands of the README: `make dev` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
# the Dagster-free core's environment: tests/unit runs there (scripts/core_requirements.py)
CORE_VENV := .venv-core
CORE_STAMP := $(CORE_VENV)/.installed-stamp

.PHONY: install dev ui test test-fast lint seed bench clean

# uv (from PyPI, into each environment) installs what pip would resolve (same versions,
# checked with pip freeze), about 5x faster: ~20 s instead of ~100 s for .venv.
# --compile-bytecode: unlike pip, uv writes no .pyc at install. Where PYTHONDONTWRITEBYTECODE
# is set (containers, CI, our machines) Python never writes one either, so every new process
# (the CLI, each run, each test's subprocess) compiled Dagster and the rest from source
# again: the CLI took 23.5 s to create its run instead of 7.4 s (bench/README.md, "bytecode").
UV_INSTALL = -m uv pip install --quiet --compile-bytecode
$(STAMP): pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet uv
	$(VENV)/bin/python $(UV_INSTALL) --python $(VENV)/bin/python -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(CORE_STAMP): pyproject.toml scripts/core_requirements.py Makefile
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet uv
	$(CORE_VENV)/bin/python scripts/core_requirements.py > $(CORE_VENV)/requirements.txt
	$(CORE_VENV)/bin/python $(UV_INSTALL) --python $(CORE_VENV)/bin/python -r $(CORE_VENV)/requirements.txt
	touch $(CORE_STAMP)

# The rest of the suite mostly waits (daemons, sensors' ticks, `dagster dev`): it runs on
# TEST_WORKERS pytest-xdist workers, a file per worker (module fixtures stay one per file),
# files handed out in collection order (tests/conftest.py puts the longest first) instead of
# xdist's default, most tests first (which started the 2-test preload file late).
TEST_WORKERS ?= 3

# tests/unit in an environment where Dagster is not installed (CPU-bound: first, on a worker
# a core), then the rest with it on the workers. pytest's exit 5 (no test ran) fails too.
define run_tests
	$(VENV)/bin/python -m orchestration.launch compile
	$(CORE_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('dagster') and 'dagster must not be installed in $(CORE_VENV)')"
	$(CORE_VENV)/bin/python -m pytest -n 2 tests/unit --durations=10 $(1)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --ignore=tests/unit --durations=25 $(1)
endef

## make dev: install, seed demo data, start the simulator and the Dagster UI (sensors on)
dev: install
	mkdir -p data
	./scripts/dev.sh

## make ui: only the Dagster UI (daemon, sensors) on LANDING_URI/LAKE_URI, with the project's
## instance settings (DAGSTER_HOME defaults to data/dagster_home); no demo data
ui: install
	$(VENV)/bin/python -m orchestration.launch dev -h 127.0.0.1 -p $${DAGSTER_PORT:-3000}

## make test: install, then every test: the core's unit tests without Dagster, then
## dagster, S3 over HTTP, faults and end-to-end `dagster dev` tests
test: install $(CORE_STAMP)
	$(call run_tests,)

test-fast: install $(CORE_STAMP)
	$(call run_tests,-m "not e2e")

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## make seed: the demo history of `make dev` (same rates, same marker): once per lake;
## `make clean` first to seed again
seed: install
	$(VENV)/bin/python -m lake.simulator.demo seed --hours $${SEED_HOURS:-3}

clean:
	rm -rf data .pytest_cache
