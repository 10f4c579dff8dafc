# mm-bronze: `make run` starts the platform on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Azure Blob emulator for the storage tests (npm package, installed under the venv).
AZURITE := $(VENV)/azurite/node_modules/azurite/dist/src/blob/main.js

.PHONY: install run test lint format bench clean

install: $(STAMP)

# The SFTP tests upload with the OpenSSH `sftp` client too; install it where it is missing.
.PHONY: openssh-client
openssh-client:
	@command -v sftp >/dev/null || (apt-get update -qq && apt-get install -y -qq openssh-client)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/mm-bronze serve --all

test: install openssh-client $(AZURITE)
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

# Every benchmark, one after another; each prints ratios against a baseline from the same run.
bench: install
	$(BIN)/python -m benchmarks                 # HTTP door vs a bare starlette+hypercorn ceiling
	$(BIN)/python -m benchmarks.validation      # validation vs plain msgspec.json.decode
	$(BIN)/python -m benchmarks.mllp            # MLLP vs a framing-only echo server
	$(BIN)/python -m benchmarks.kafka_bus       # HTTP ingest on Kafka vs the embedded bus
	$(BIN)/python -m benchmarks.storage_drain   # consumer drain on S3 (moto) vs local disk
	$(BIN)/python -m benchmarks.sftp            # OpenSSH uploads vs a bare asyncssh server

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
