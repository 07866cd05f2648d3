# The two commands of the README's quick start are `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test test-quick lint bench db-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# fills the recent weeks (candles through leaderboard) on the first run, then serves the UI
dev: $(STAMP)
	$(BIN)/python -m cryptify_pipeline.bootstrap
	$(BIN)/dagster dev

test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile

# the everyday run: no statistical tests, no servers started
test-quick: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow and not live"

lint: $(STAMP)
	$(BIN)/ruff check cryptify_pipeline cryptify_pipeline_tests benchmarks
	$(BIN)/ruff format --check cryptify_pipeline cryptify_pipeline_tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.io_manager
	$(BIN)/python -m benchmarks.candles
	$(BIN)/python -m benchmarks.forecasting
	$(BIN)/python -m benchmarks.operations
	$(BIN)/python -m benchmarks.executors

db-stop: $(STAMP)
	$(BIN)/cryptify db stop

clean:
	if [ -x $(BIN)/python ]; then $(MAKE) db-stop || true; fi
	rm -rf $(VENV) .cryptify .tmp_dagster_home_*
