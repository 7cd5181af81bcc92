# `make run` and `make test` are all a newcomer needs: each installs what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# On machines without an NVIDIA GPU pin the CPU wheel of torch (any other spec pulls CUDA wheels).
CONSTRAINTS := -c constraints.txt $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PORT ?= 5000
HOST ?= 127.0.0.1
PGPORT ?= 5433
STATE ?= .state
ALLOWED_HOSTS ?=
ARGS ?=

.PHONY: install data run test test-fast test-deps lint format bench ui server clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt constraints-cpu.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[dev,slurm]'
	@touch $(STAMP)

# Fashion-MNIST, the embedded default data set, from Debian's package (skipped when already there).
data:
	@if [ ! -f $(FMNIST) ] && [ ! -f data/FashionMNIST/raw/train-images-idx3-ubyte.gz ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run with dataset.download=true on a machine that is online"; fi; \
	fi

run: install data
	$(VENV)/bin/runner $(ARGS)

# Every test: lint, the in-process tier and the e2e tier (trainings through the real `runner`, servers, a
# browser, the built wheel). apt-get runs only for what is missing (data, test-deps check first).
test: install data lint test-deps
	$(PY) -m pytest -q tests

# The edit loop: the in-process tests only (no `runner` subprocess, no server, no apt-get), under a minute.
test-fast: install
	$(PY) -m pytest -q -m "not e2e and not slow" tests

lint: install
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/ruff format --check runner tests benchmarks

format: install
	$(VENV)/bin/ruff format runner tests benchmarks
	$(VENV)/bin/ruff check --fix runner tests benchmarks

bench: install data
	$(PY) -m benchmarks $(ARGS)

# The MLflow UI over the default store (./mlflow.db, ./mlartifacts) on 127.0.0.1:$(PORT).
# No GenAI job runners: MLflow 3 would start several processes of them for nothing here.
ui: install
	@echo "MLflow UI: http://127.0.0.1:$(PORT)/#/experiments  (store: sqlite:///$(CURDIR)/mlflow.db; Ctrl-C stops it)"
	MLFLOW_ALLOW_FILE_STORE=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
	  --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts \
	  --host 127.0.0.1 --port $(PORT) --workers 1

# A shared tracking server: PostgreSQL cluster under $(STATE)/postgres (loopback only), artifacts under
# $(STATE)/mlartifacts served over http. Other machines: HOST=0.0.0.0 ALLOWED_HOSTS=<name>:$(PORT).
server: install test-deps
	STATE=$(STATE) HOST=$(HOST) PORT=$(PORT) PGPORT=$(PGPORT) ALLOWED_HOSTS=$(ALLOWED_HOSTS) \
	  MLFLOW=$(VENV)/bin/mlflow scripts/pg_server.sh

# System packages the UI/server tests drive: Chromium and its driver (Selenium), PostgreSQL.
test-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing:$$missing (install them; the tests that need them skip)"; fi; \
	fi

clean:
	rm -rf outputs multirun checkpoints .pytest_cache .ruff_cache build dist
