# `make run` and `make test` are all a newcomer needs: each installs what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# On machines without an NVIDIA GPU pin the CPU wheel of torch (any other spec pulls CUDA wheels).
CONSTRAINTS := -c constraints.txt $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PORT ?= 5000
ARGS ?=

.PHONY: install data run test test-deps lint format bench ui server clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt constraints-cpu.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[dev]'
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

test: install data lint
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/ruff format --check runner tests benchmarks

format: install
	$(VENV)/bin/ruff format runner tests benchmarks
	$(VENV)/bin/ruff check --fix runner tests benchmarks

bench: install data
	$(PY) -m benchmarks $(ARGS)

ui: install
	@echo "MLflow UI: http://127.0.0.1:$(PORT)  (store: sqlite:///$(CURDIR)/mlflow.db)"
	MLFLOW_ALLOW_FILE_STORE=true $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db \
	  --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port $(PORT)

clean:
	rm -rf outputs multirun checkpoints .pytest_cache .ruff_cache
