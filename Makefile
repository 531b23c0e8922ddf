# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
SCALEOUT_STAMP := $(VENV)/.scaleout-installed
N ?= 1000000
KIND ?= all

SCALE ?= 1

.PHONY: demo test bench bench-city scaleout lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The bench extra (dlt, the peer the hub is measured against) only for `make bench`.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The scaleout extra (Airflow's Celery provider, the Redis client) only for `make scaleout`.
$(SCALEOUT_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,scaleout]'
	touch $(SCALEOUT_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sandbox demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q

# The peer benchmark (hub, raw COPY, dlt), then linking N people and 10,000 more.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.peer_bench --rows $(N) --kind $(KIND)
	$(BIN)/python -m bench.link_bench --rows $(N) --new 10000
	$(BIN)/python -m sandbox city --scale 0.05 --days 3

# The whole city (SCALE=1: all of 盘锦) generated, first ingest and a daily run, timed.
bench-city: $(STAMP)
	$(BIN)/python -m sandbox city --scale $(SCALE)

# The ingest DAGs on Airflow's CeleryExecutor: two workers, then one, on this machine's
# Redis and PostgreSQL (sandbox/scaleout.py); says why and skips when either is missing.
scaleout: $(SCALEOUT_STAMP)
	$(BIN)/python -m sandbox scaleout

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf .hub $(VENV)
