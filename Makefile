# The two commands of the README's quick start are `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_PORT ?= 3000
API_PORT ?= 8000

.PHONY: install dev test test-quick test-unit test-deploy lint bench db-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# fills the recent weeks (candles through leaderboard) on the first run, then serves the Dagster
# UI and, beside it, the data API with its dashboard; one Ctrl-C stops both. The bootstrap ends
# with the two URLs, so it is told the ports. `dagster dev` warns on every start that `dg dev`
# (dagster-dg, not a dependency here) supersedes it: known, so not shown.
dev: $(STAMP)
	$(BIN)/python -m cryptify_pipeline.bootstrap --dagster-port $(DAGSTER_PORT) --api-port $(API_PORT)
	$(BIN)/cryptify api --port $(API_PORT) & api=$$!; \
	trap 'kill $$api 2>/dev/null' INT TERM EXIT; \
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
		$(BIN)/dagster dev --port $(DAGSTER_PORT)

# --dist loadfile: cryptify_pipeline_tests/conftest.py makes a file, or the api/ folder (its
# tests share one costly fixture), a unit of work for one worker, heaviest units first
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile

# the everyday run: no statistical tests, no servers started
test-quick: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow and not live"

# pure functions only: no database, no Dagster instance, no servers; runs with no Postgres at all
test-unit: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not integration and not slow and not live and not deploy"

# the production stack in a private Docker engine (root; ~5 min; see docs/production.md). The
# engine's root is removed by the test, and by the `clean` after it if the test was killed.
test-deploy: $(STAMP)
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null \
		&& command -v docker-compose >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq docker.io debootstrap docker-compose)
	CRYPTIFY_DEPLOY_TEST=1 $(BIN)/pytest -q -s -m deploy \
		cryptify_pipeline_tests/deployment/test_production_stack.py; \
	status=$$?; $(BIN)/python -m cryptify_pipeline_tests.deployment.docker_engine clean; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check cryptify_pipeline cryptify_pipeline_tests benchmarks
	$(BIN)/ruff format --check cryptify_pipeline cryptify_pipeline_tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.io_manager
	$(BIN)/python -m benchmarks.candles
	$(BIN)/python -m benchmarks.forecasting
	$(BIN)/python -m benchmarks.operations
	$(BIN)/python -m benchmarks.executors
	$(BIN)/python -m benchmarks.training
	$(BIN)/python -m benchmarks.bookkeeping
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.intervals
	$(BIN)/python -m benchmarks.backtest
	$(BIN)/python -m benchmarks.tick

db-stop: $(STAMP)
	$(BIN)/cryptify db stop

clean:
	if [ -x $(BIN)/python ]; then $(MAKE) db-stop || true; fi
	rm -rf $(VENV) .cryptify .tmp_dagster_home_*
