# convoy-stream: `make run` serves on an embedded Kafka, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run worker api bridge test unit bench services clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## The service: embedded Apache Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) + one worker.
run: install
	$(BIN)/convoy-stream dev

## One more worker against KAFKA_BOOTSTRAP_SERVERS (scale-out); set CONVOY_STREAM_PORT and CONVOY_STREAM_DATA_DIR.
worker: install
	$(BIN)/convoy-stream worker

## The API role against KAFKA_BOOTSTRAP_SERVERS: every HTTP route, no agents or tables, one process per core on CONVOY_STREAM_PORT.
api: install
	$(BIN)/convoy-stream api

## Broker bridges alone, in their own process.
bridge: install
	$(BIN)/convoy-stream bridge

## Services the integration and browser tests use that are not Python packages (RabbitMQ, Chromium).
services:
	bash scripts/install-services.sh

## Everything installed, then every test (unit and integration against real services).
test: install services
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest -q tests/unit

## Benchmarks (bench/README.md): BENCH_ARGS="--quick" for ~3 minutes, "--only rest,pipeline", "--runs 5".
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data
