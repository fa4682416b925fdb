# The README's commands. `make up` runs everything locally; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test demo bench bench-http bench-system bench-bus bench-registry bench-assessment bench-assistance bench-reporting bench-webhooks bench-mpi bench-consumers bench-province bench-import-status load capacity venv lint asyncapi checkov clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(BIN)/kaenkhun up

demo: $(STAMP)
	$(BIN)/kaenkhun demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -u -m bench.suite $(BENCH_ARGS)

bench-http: $(STAMP)
	$(BIN)/python -m bench.http $(BENCH_ARGS)

bench-system: $(STAMP)
	$(BIN)/python -u -m bench.system $(BENCH_ARGS)

bench-bus: $(STAMP)
	$(BIN)/python -m bench.bus $(BENCH_ARGS)

bench-registry: $(STAMP)
	$(BIN)/python -m bench.registry $(BENCH_ARGS)

bench-assessment: $(STAMP)
	$(BIN)/python -m bench.assessment $(BENCH_ARGS)

bench-assistance: $(STAMP)
	$(BIN)/python -m bench.assistance $(BENCH_ARGS)

bench-reporting: $(STAMP)
	$(BIN)/python -m bench.reporting $(BENCH_ARGS)

bench-webhooks: $(STAMP)
	$(BIN)/python -m bench.webhooks $(BENCH_ARGS)

bench-mpi: $(STAMP)
	$(BIN)/python -m bench.mpi $(BENCH_ARGS)

bench-consumers: $(STAMP)
	$(BIN)/python -m bench.consumers $(BENCH_ARGS)

bench-province: $(STAMP)
	$(BIN)/python -u -m bench.province $(BENCH_ARGS)

bench-import-status: $(STAMP)
	$(BIN)/python -m bench.import_status $(BENCH_ARGS)

load: $(STAMP)
	$(BIN)/python -u -m bench.load $(LOAD_ARGS)

capacity: $(STAMP)
	$(BIN)/python -u -m bench.load --capacity $(LOAD_ARGS)

# checkov (the policy checker tests/test_kubernetes.py runs on deploy/kubernetes) in a virtualenv of its own: it
# pins packages (packaging, among ~80) that the project's would otherwise have to follow. Pinned, so that a new
# release's new checks do not fail a build that did not change.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := build/tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

asyncapi: $(STAMP)
	$(BIN)/kaenkhun asyncapi --output docs/asyncapi.json

lint: $(STAMP)
	$(BIN)/ruff check shared services tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
