# mm-bronze: `make run` starts the platform on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Azure Blob emulator for the storage tests (npm package, installed under the venv).
AZURITE := $(VENV)/azurite/node_modules/azurite/dist/src/blob/main.js

.PHONY: install install-test run test lint format bench clean clean-data openssh-client wrk

# Installs are reproducible: `uv sync --frozen` installs exactly what uv.lock pins (refresh it
# with `make lock` after changing pyproject.toml). uv itself lives in its own small venv so
# that syncing the project's venv never removes it.
UV       := .uv/bin/uv
UV_SYNC  := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --quiet --python $(PYTHON)
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP      := $(STAMP_TEST)
# The compiled modules' sources (setup.py builds them): a change reinstalls the project.
C_SOURCES  := $(wildcard mm_bronze/*/*/*.c mm_bronze/*/*/*/*.c)

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9

# What running needs; `make test` adds the test tools.
install: $(STAMP_RUN)
install-test: $(STAMP_TEST)

$(STAMP_RUN): pyproject.toml uv.lock setup.py $(C_SOURCES) | $(UV)
	$(UV_SYNC) --inexact
	touch $(STAMP_RUN)

$(STAMP_TEST): pyproject.toml uv.lock setup.py $(C_SOURCES) | $(UV)
	$(UV_SYNC) --extra test
	touch $(STAMP_RUN) $(STAMP_TEST)

.PHONY: lock
lock: | $(UV)
	$(UV) lock

# The SFTP tests upload with the OpenSSH `sftp` client too; install it where it is missing.
openssh-client:
	@command -v sftp >/dev/null || (apt-get update -qq && apt-get install -y -qq openssh-client)

# The HTTP benchmarks load the door with wrk; install it where it is missing.
wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

# exec: the shell gives way to the server, so Ctrl-C reaches it once, from the terminal.
run: install
	exec $(BIN)/mm-bronze serve --all

# The suite runs in TEST_WORKERS processes (pytest-xdist), each test file whole in one of
# them; each worker starts its own services on ports apart from the others'. Schemathesis
# gives all the API operations of one test function that function's node id, and xdist hands
# tests out by node id (it would run one operation of each): that file runs on its own.
TEST_WORKERS ?= 2
ONE_PROCESS_TESTS := tests/ingest/http/test_openapi.py

test: install-test openssh-client $(AZURITE)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --ignore=$(ONE_PROCESS_TESTS)
	$(BIN)/pytest $(ONE_PROCESS_TESTS)

$(AZURITE): | $(STAMP)
	npm install --prefix $(VENV)/azurite --no-audit --no-fund --silent azurite@3
	test -f $(AZURITE)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark, one after another; each prints ratios against a baseline from the same run.
bench: install-test wrk
	$(BIN)/python -m benchmarks.summary --reset
	$(BIN)/python -m benchmarks                 # HTTP door (wrk) vs a bare starlette+hypercorn ceiling
	$(BIN)/python -m benchmarks.validation      # validation vs plain msgspec.json.decode
	$(BIN)/python -m benchmarks.mllp            # MLLP vs a framing-only echo server
	$(BIN)/python -m benchmarks.kafka_bus       # HTTP ingest on Kafka (Tansu) vs the ceiling
	$(BIN)/python -m benchmarks.storage_drain   # consumer drain vs bare loops (local disk, S3)
	$(BIN)/python -m benchmarks.sftp            # OpenSSH uploads vs a bare asyncssh server
	$(BIN)/python -m benchmarks.startup         # command start-up vs python -c pass
	$(BIN)/python -m benchmarks.summary         # one table: figure, baseline, ratio, goal, met

# Build output and caches only; never the data directory.
clean:
	rm -rf $(VENV) .uv build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find mm_bronze -name '*.so' -delete

# Deletes ./data: every stored object, the embedded database, the SFTP users and host key.
clean-data:
	rm -rf data
