# mm-bronze: `make run` starts the platform on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Azure Blob emulator for the storage tests (npm package, installed under the venv).
AZURITE := $(VENV)/azurite/node_modules/azurite/dist/src/blob/main.js

.PHONY: install run test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/mm-bronze serve --all

test: install $(AZURITE)
	$(BIN)/pytest

$(AZURITE): | $(STAMP)
	npm install --prefix $(VENV)/azurite --no-audit --no-fund --silent azurite@3
	test -f $(AZURITE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
