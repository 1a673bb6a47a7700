# SEGS developer commands. `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-redis-broker test-amqp-broker bench lint typecheck services browser screenshots diagrams migrate install clean

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

install: $(INSTALLED)

services:
	@$(PYTHON) tools/check_services.py

## Headless Chromium and ChromeDriver for the browser tests (Debian's packages; apt-get as root)
browser:
	@$(PYTHON) tools/ensure_browser.py

## docs/images/*.png: the pages the README shows, taken in headless Chromium
screenshots: install services browser
	$(BIN)/python -m tools.screenshots

## docs/images/architecture.svg from docs/architecture.dot (needs Graphviz: apt-get install graphviz)
diagrams:
	dot -Tsvg docs/architecture.dot -o docs/images/architecture.svg

migrate: install services
	$(BIN)/flask --app segs.web migrate

## Start the API, the feed, a worker, beat, Flower and the simulator; Ctrl-C stops them (DURATION=N to stop after N s)
run: migrate
	$(BIN)/python -m tools.run_stack

# What runs again on a three-node Redis Cluster the suite starts itself (with RabbitMQ).
CLUSTER_TESTS := tests/integration/test_pipeline_e2e.py tests/integration/test_redelivery.py \
	tests/integration/test_kill.py tests/integration/test_detection_script.py \
	tests/integration/test_flush.py tests/integration/test_alert_detection.py \
	tests/integration/test_recompute.py tests/integration/test_single_beat.py \
	tests/integration/test_redis_loss.py tests/integration/test_script_specs.py \
	tests/integration/test_window_scripts_spec.py

## Lint, type-check, import contracts, unit tests, then the integration suite on both brokers
## side by side (the tests that touch no broker only on the first), the cluster run after RabbitMQ's.
## Each run has a database and Redis database of its own (tests/conftest.py); make prints a run's
## output when it ends, and fails if either failed. Their tests mostly wait on workers and timers,
## so together they take about as long as the longer one.
test: install services browser lint typecheck
	$(BIN)/python -m pytest tests/unit -q
	$(MAKE) --no-print-directory -j2 --output-sync=target test-redis-broker test-amqp-broker

test-redis-broker: install services browser
	SEGS_TEST_BROKER=redis $(BIN)/python -m pytest tests/integration -q

test-amqp-broker: install services
	SEGS_TEST_BROKER=amqp $(BIN)/python -m pytest tests/integration -q -m "not api and not scripts"
	SEGS_TEST_BROKER=amqp SEGS_TEST_REDIS=cluster $(BIN)/python -m pytest $(CLUSTER_TESTS) -q

test-unit: install
	$(BIN)/python -m pytest tests/unit -q

test-integration: install services browser
	SEGS_TEST_BROKER=$${SEGS_TEST_BROKER:-redis} $(BIN)/python -m pytest tests/integration -q

## End-to-end throughput benchmark (see BENCHMARKS.md)
bench: install services
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy segs simulator bench tools celeryconfig.py beat_schedule.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
