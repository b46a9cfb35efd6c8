# raw-to-ready: `make all` runs the pipeline on the bundled sample, `make test` lints and tests.
# Without DATABASE_URL every target uses an embedded PostgreSQL under .pgdata/.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/pipeline.yaml
ROWS ?= 1000000
BENCH_ARGS ?=
# e.g. EXPORT_ARGS=--exact-decimals (money as decimal128 rather than float64)
EXPORT_ARGS ?=
ENTITIES ?=
OUT ?= features.csv
PYTEST_ARGS ?=
# test processes (pytest-xdist workers, each with its own throwaway server); 0 runs in this process
TEST_WORKERS ?= 2
# the browser the HTML report's test drives (Debian's package: `make chromium` installs it)
CHROMIUM ?= chromium
export CHROMIUM
# test-suites installs Chromium first, unless the browser tests are left out (PYTEST_ARGS="-m 'not browser'")
BROWSER_DEPS := $(if $(findstring not browser,$(PYTEST_ARGS)),,chromium)
# PostgreSQL major version of the embedded server (18 by default; 16 is the oldest supported)
PG_VERSION ?= $(or $(PGSERVER_POSTGRES_VERSION),18)
export PGSERVER_POSTGRES_VERSION := $(PG_VERSION)
# e.g. RUN_ARGS=--full-refresh (every stage from scratch, not just the new files)
RUN_ARGS ?=
RUN := $(PY) -m scripts.run --config $(CONFIG) $(RUN_ARGS)

.DEFAULT_GOAL := help
.PHONY: help all install db-up db-stop psql migrate roles ingest validate model stage features splits retrieve export train render \
	schemas report lint chromium test test-suites bench bench-incremental bench-export citus-up citus-down demo-dirty demo-uci clean distclean

help: ## List the targets (the default)
	@echo "raw-to-ready: make <target> [CONFIG=configs/pipeline.yaml] [DATABASE_URL=...]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-17s %s\n", $$1, $$2}'

all: install db-up ## Install, start PostgreSQL, run every stage on the sample (CONFIG=...)
	@echo "== running the pipeline: $(CONFIG)"
	$(RUN)

install: $(VENV)/.installed $(VENV)/.on-path ## Create .venv, install requirements.txt, put the repository on its path

$(VENV)/.installed: requirements.txt
	@echo "== creating $(VENV) and installing requirements.txt"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

# the repository on the venv's path (a .pth file): `.venv/bin/python -c "from scripts import api"`
# works from any folder
$(VENV)/.on-path: $(VENV)/.installed
	$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'raw_to_ready.pth').write_text('$(CURDIR)\n')"
	touch $@

# the benchmark's comparator (DuckDB): only `make bench` installs it
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	@echo "== installing requirements-bench.txt (the benchmark's DuckDB comparator)"
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

db-up: install ## Start the embedded PostgreSQL (unless DATABASE_URL is set), make CONFIG's database, print its URL
	$(PY) -m scripts.db.server up --config $(CONFIG)

db-stop: install ## Stop the embedded PostgreSQL
	$(PY) -m scripts.db.server stop

psql: install ## Open psql on the database of CONFIG's pipeline
	$(PY) -m scripts.db.server psql --config $(CONFIG)

migrate: install ## Apply pending schema migrations to CONFIG's database
	$(PY) -m scripts.db.migrate --config $(CONFIG)

roles: install ## Create the owner, loader and reader roles and set CONFIG's database up (as a DBA)
	$(PY) -m scripts.db.roles --config $(CONFIG)

ingest: install ## Run through ingest: COPY the configured files into raw.raw_events
	$(RUN) --stage ingest

validate: install ## Run through validation: record-level rules, quarantine
	$(RUN) --stage validate

model: install ## Run through the source models and order-level rules: stg.model_orders
	$(RUN) --stage model

stage: install ## Run through staging: stg.orders
	$(RUN) --stage stage

features: install ## Run through features (unpublished: `all` ends with the registry, which publishes)
	$(RUN) --stage features

splits: install ## Run through splits (unpublished: `all` ends with the registry, which publishes)
	$(RUN) --stage splits

retrieve: install ## Features as of any instant: make retrieve ENTITIES=<customer_id,as_of CSV> [OUT=features.csv]
	@if [ -z "$(ENTITIES)" ]; then \
		echo "usage: make retrieve ENTITIES=<CSV with customer_id,as_of> [OUT=features.csv] [CONFIG=...]" >&2; \
		echo "  ENTITIES: a CSV file with the header customer_id,as_of and one row per (customer, instant)" >&2; \
		exit 2; \
	fi
	$(PY) -m scripts.serve.retrieve --config $(CONFIG) --entities $(ENTITIES) --out $(OUT)

export: install ## Write the training set to artifacts/datasets/<pipeline>/<feature_version>/ (hive Parquet; EXPORT_ARGS=--exact-decimals)
	$(PY) -m scripts.serve.export --config $(CONFIG) $(EXPORT_ARGS)

train: install ## Fit and score the baseline models: meta.model_runs, artifacts/models/<version>/
	$(PY) -m scripts.serve.train --config $(CONFIG)

render: install ## Write every stage's rendered SQL to artifacts/rendered/ for psql -f
	$(RUN) --render --out artifacts/rendered

schemas: install ## Write configs/schemas/*.json (JSON Schemas editors check configs with) from the config code
	$(PY) -m scripts.config.schema

report: install ## Print the path of CONFIG's latest HTML report (and open it where a browser exists)
	$(PY) -m scripts.reports.html --open --config $(CONFIG)

lint: install ## Lint sql/ with sqlfluff (.sqlfluff), on every core
	@echo "== sqlfluff lint sql/"
	$(PY) -m sqlfluff lint --processes 0 sql/

chromium: ## Install Debian's chromium for the HTML report's browser test when missing (as root)
	@if [ -n "$$(command -v $(CHROMIUM))" ]; then \
		echo "== chromium for the browser test: $$(command -v $(CHROMIUM))"; \
	elif [ "$$(id -u)" = 0 ] && [ -n "$$(command -v apt-get)" ]; then \
		echo "== installing Debian's chromium for the browser test (apt-get)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			chromium fonts-liberation; \
	else \
		echo "chromium is missing: the HTML report's browser test needs it. As root on Debian:" \
			"apt-get install chromium (or set CHROMIUM=/path/to/chromium);" \
			"PYTEST_ARGS=\"-m 'not browser'\" runs the suites without it." >&2; \
		exit 1; \
	fi

test: lint test-suites ## Lint, then run every test suite against a real PostgreSQL (PG_VERSION=16 for 16)

test-suites: install $(BROWSER_DEPS) ## Run every test suite without the lint (PG_VERSION=16; PYTEST_ARGS=-k ...; TEST_WORKERS=2)
	@echo "== pytest (TEST_DATABASE_URL, or a throwaway embedded PostgreSQL $(PG_VERSION))"
	$(PY) -m pytest tests -ra -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: install $(VENV)/.bench-installed ## Benchmark every stage beside DuckDB on ROWS generated orders (ROWS=1000000)
	$(PY) -m scripts.bench --rows $(ROWS) $(BENCH_ARGS)

bench-incremental: install ## Benchmark a daily run, a first load after the sample and 730 daily files against the full run (ROWS=1000000)
	$(PY) -m scripts.bench.incremental --rows $(ROWS) $(BENCH_ARGS)

bench-export: install ## Benchmark export (and train: BENCH_ARGS=--train) on ROWS generated orders
	$(PY) -m scripts.bench.export --rows $(ROWS) $(BENCH_ARGS)

citus-up: install ## Build Citus once (.citus/), start a coordinator and two workers on localhost, print the URL
	$(PY) -m scripts.db.citus up

citus-down: install ## Stop the local Citus cluster (its data stays in .citus/)
	$(PY) -m scripts.db.citus down

demo-dirty: install ## Run the dirty sample in its own pipeline (dirty_sample): the gate fails on purpose (exit 1)
	$(PY) -m scripts.run --config configs/pipeline_dirty.yaml

demo-uci: install ## Run the real UCI Online Retail lines in their own pipeline (uci_online_retail): exit 0
	$(PY) -m scripts.run --config configs/uci_online_retail.yaml

clean: ## Remove generated artifacts (reports, rendered SQL, runs, benchmark data)
	@echo "== removing artifacts/* and data/bench/"
	find artifacts -mindepth 1 -not -name .gitkeep -delete
	rm -rf data/bench

distclean: clean db-stop ## Also stop and delete the embedded database, the Citus cluster and .venv
	-$(PY) -m scripts.db.citus down
	rm -rf .pgdata .citus $(VENV)
