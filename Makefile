# `make run` and `make test` are all a newcomer needs: each installs what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# On machines without an NVIDIA GPU pin the CPU wheel of torch (any other spec pulls CUDA wheels).
CONSTRAINTS := -c constraints.txt $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PORT ?= 5000
HOST ?= 127.0.0.1
PGPORT ?= 5433
STATE ?= .state
ALLOWED_HOSTS ?=
ARGS ?=
# Bytecode is written (where a shell sets PYTHONDONTWRITEBYTECODE, as some images do): pytest then keeps each
# test module's assertion-rewritten code, and a test run after the first collects in about half the time.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: install install-dev data run test test-claims test-cluster test-fast test-deps lint format bench gpu-check mutants ui server clean

# install: what `runner` needs (make run, ui, bench); install-dev adds the tests' and tools' extras (pytest,
# ruff, selenium, the joblib and SLURM launchers, the server's logins): a newcomer's `make run` waits for
# the first only (about a minute less on a fresh machine).
install: $(STAMP)
install-dev: $(DEV_STAMP)

# pip compiles each file it installs on one core; compileall -j 0 does the same on every core afterwards:
# 45 + 30 s instead of 144 s for `install` in a fresh venv on 2 cores of an AMD EPYC (2026-12-07). The
# libraries' own test suites (a quarter of the 15,400 files: pandas/tests, scipy's, numpy's) are never imported.
SITE = $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
COMPILE = $(PY) -m compileall -q -j 0 -x '/tests?/' $(SITE) > /dev/null || true  # a template that is not Python: pip skips it too

$(STAMP): pyproject.toml constraints.txt constraints-cpu.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile $(CONSTRAINTS) -e .
	@$(COMPILE)
	@touch $(STAMP)

# One pip run for both on a new venv (make test first): one resolve, one editable build, one compile pass.
$(DEV_STAMP): pyproject.toml constraints.txt constraints-cpu.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile $(CONSTRAINTS) -e '.[dev,slurm]'
	@$(COMPILE)
	@touch $(STAMP) $(DEV_STAMP)

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

# Tests run in one pytest-xdist worker per core (at most 4): each test is single-threaded (one torch thread, its
# `runner` subprocesses too), and much of the e2e tier is process start-up. XDIST= runs them in one process.
# The tests marked `serial` write into the source tree that the others read, or read the machine's load: they
# run alone, after. One worker a core: a third on 2 cores made make test slower (13 min 11 s against 11 min 44 s
# of pytest on an AMD EPYC, 2026-12-07), though the SLURM and server tests spend minutes waiting.
XDIST ?= -n $(shell echo $$(( $$(nproc) < 4 ? $$(nproc) : 4 ))) --dist loadgroup
SERIAL_FILES := $(shell grep -rl --include='test_*.py' 'pytest.mark.serial' tests)  # collected alone: seconds

# Every test: lint, the in-process tier and the e2e tier (trainings through the real `runner`, servers, a
# browser, the built wheel). apt-get runs only for what is missing (data, test-deps check first). Within 12
# minutes on 2 cores of an AMD EPYC: the paper claims measured at a settled budget (minutes of training each)
# are `make test-claims`, and the tests of several processes or machines per job (2-process DDP jobs, the SLURM cluster, the
# PostgreSQL store and the server with logins, torchrun, the GPU-slot launcher: ~5 min of both cores) `make
# test-cluster`. A fresh clone on 2 cores of an AMD EPYC (`bash .ci/run`, nothing else running): 8 min 49 s
# (2026-12-07 22:41, 1,471 + 4 tests: 399 s of xdist, 17 s of serial tests, the rest install, lint and the apt
# checks; 10 min 49 s at 23:23 with the same tests, the machine a fifth slower; 10 min 51 s before the
# pre-flight composed each job once and the xdist workers skipped their interpreter's teardown, 13 min 20 s
# before the 2-process DDP sweep moved to test-cluster).
test: install-dev data lint test-deps
	$(PY) -m pytest -q $(XDIST) -m "not claims and not cluster and not serial" tests
	$(PY) -m pytest -q -m "serial and not claims and not cluster" $(SERIAL_FILES)

# The tests of a scientific claim at a budget where its outcome is settled (marker `claims`; ~10 min on 2 cores).
test-claims: install-dev data
	$(PY) -m pytest -q -m claims tests

# More than one machine, for real: 2-process DDP jobs on gloo (a sweep that survives a dead rank, resumes and
# matches one process), the local SLURM cluster (sweeps, DDP ranks, preemption and the time limit),
# the shared tracking server with logins, torchrun and the GPU-slot launcher (marker `cluster`; not in make
# test, which they would take past 12 minutes on 2 cores).
test-cluster: install-dev data test-deps
	$(PY) -m pytest -q $(XDIST) -m cluster tests

# The edit loop: the in-process tests only (no `runner` subprocess, no server, no apt-get), in parallel; the
# `serial` ones (the toy extension written into the tree, the benchmark's load reading) wait for `make test`.
# The tests that take seconds each (`slow`) or train whole runs through an entry point (`whole_run`) wait too.
# The goal: under a minute on 2 cores. An AMD EPYC of family 26 (Zen 5), 2026-12-08: 17.3-20.5 s of pytest,
# median 18.9 s (1,382 tests, 9 runs alternating with the tree of 2026-12-07's end: 20.4-24.4 s, median 21.0 s);
# 20.8-22.1 s with 1,388 when the machine ran slower and that tree took 23.2-25.6 s.
# The AMD EPYC Zen 3 ran that earlier tree in 55-68 s, median 60 s (12 runs, 2026-12-07 22:25-23:01).
test-fast: install-dev
	TEST_FAST=1 $(PY) -m pytest -q $(XDIST) -m "not e2e and not slow and not whole_run and not serial" tests

lint: install-dev
	$(VENV)/bin/ruff check runner tests benchmarks hydra_plugins scripts
	$(VENV)/bin/ruff format --check runner tests benchmarks hydra_plugins scripts

format: install-dev
	$(VENV)/bin/ruff format runner tests benchmarks hydra_plugins scripts
	$(VENV)/bin/ruff check --fix runner tests benchmarks hydra_plugins scripts

bench: install data
	$(PY) -m benchmarks $(ARGS)

# Mutation testing of every module of the package ([tool.mutmut] in pyproject.toml), not part of `make test`:
# a random sample of each module's mutants (scripts/mutation_sample.py: MUTANTS_PER_MODULE of each, all of a
# smaller module; the same sample on every run, MUTANTS_SEED draws another; MUTANTS_ALL=1 takes all 14,677,
# hours on 2 cores), each run against the in-process tests that execute its function (fastest first) in a
# mutants/ copy of the tree; then the score per module with its 95 % interval (scripts/mutation_score.py:
# >= 90 %, the survivors that cannot change behaviour listed with reasons in tests/mutants-equivalent.md).
# RESUME=1 keeps mutants/ and its verdicts: only the sample's untested, surviving and no-test mutants run.
# MUTANTS_TEST_SECONDS caps a mutant's tests (fastest first) at that much of their recorded time: a survivor no
# longer runs every training test that touches its function; one only a slower test kills counts as surviving.
# 20 a module (914 mutants of 46 modules): 21 min 21 s from scratch on 2 cores of an AMD EPYC (2026-12-07,
# seed 2: generation, the tests' stats, the clean run and every mutant); 60 a module (~2,600) about three times
# the mutants' part, near an hour.
MUTANTS_PER_MODULE ?= 20
MUTANTS_SEED ?= 1
MUTANTS_TEST_SECONDS ?= 10
mutants: install-dev data
	$(PY) -m pip install -q "mutmut>=3.8,<3.9"
	$(if $(RESUME),rm -rf mutants/tests,rm -rf mutants); mkdir -p $(STATE)
	$(PY) scripts/mutation_sample.py $(if $(MUTANTS_ALL),--all,--per-module $(MUTANTS_PER_MODULE)) \
	  --seed $(MUTANTS_SEED) --out $(STATE)/mutants-sample.txt > $(STATE)/mutants-to-test.txt
	TEST_FAST=1 MUTANT_TEST_SECONDS=$(MUTANTS_TEST_SECONDS) xargs -r -s 2000000 -a $(STATE)/mutants-to-test.txt $(VENV)/bin/mutmut run --max-children 2 \
	  > $(STATE)/mutants.log 2>&1 || (tail -20 $(STATE)/mutants.log; exit 1)
	$(VENV)/bin/mutmut results --all true > $(STATE)/mutants-results.txt
	$(PY) scripts/mutation_score.py --results $(STATE)/mutants-results.txt --sample $(STATE)/mutants-sample.txt

# The CUDA paths on a GPU machine: `pytest -m gpu` and the GPU benchmark, as JSON lines in $(GPU_CHECK_OUT).
# Without a GPU: one line, exit 0 (nothing installed). With one and a tree that carries .whl/ (the wheels
# ../shared/device-wheels.sh collects: hydra-core, omegaconf, mlflow, hydra-joblib-launcher and what they
# need beyond the image): offline, the image's own python and torch, those wheels unpacked into
# $(GPU_SITE) with pip --no-index (no registry is asked), the tree on PYTHONPATH (gpu-env). Without .whl/:
# the venv and the `gpu` extra from the registry, torchvision held to the installed torch.
GPU_CHECK_OUT ?= gpu-check.jsonl
GPU_PY ?= python3
GPU_SITE ?= $(STATE)/gpu-site
GPU_WHEEL_TAGS ?=
gpu-check:
	@if ! nvidia-smi -L >/dev/null 2>&1; then \
	  echo "gpu-check: no CUDA GPU on this machine (nvidia-smi finds none); nothing to check"; exit 0; fi; \
	if ls .whl/*.whl >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory gpu-env && \
	  PYTHONPATH=$(CURDIR):$(abspath $(GPU_SITE)) $(GPU_PY) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT) $(ARGS); \
	else \
	  $(MAKE) --no-print-directory install-dev && \
	  $(PY) -m pip install -q $(CONSTRAINTS) "torch==$$($(PY) -c 'import torch; print(torch.__version__)')" \
	    -e '.[dev,slurm,gpu]' && \
	  $(PY) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT) $(ARGS); \
	fi

# gpu-check's offline install: .whl/*.whl into $(GPU_SITE), never from a registry (--no-index --no-deps).
# GPU_WHEEL_TAGS: the target's tags when unpacking for another python (a CPU machine's check of this step).
.PHONY: gpu-env
gpu-env:
	@ls .whl/*.whl >/dev/null 2>&1 || { echo "gpu-env: no .whl/*.whl: run ../shared/device-wheels.sh first"; exit 2; }
	rm -rf $(GPU_SITE) && mkdir -p $(GPU_SITE)
	$(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --target $(GPU_SITE) $(GPU_WHEEL_TAGS) .whl/*.whl
	@echo "gpu-env: $$(ls .whl/*.whl | wc -l) wheels from .whl/ in $(GPU_SITE) (no registry asked)"

# A one-node SLURM cluster (scripts/slurm_cluster.sh; as root: Debian's slurmctld, slurmd, munge installed
# when missing), its state and config under $(STATE)/slurm, addresses 127.0.0.1 only. Then:
#   export SLURM_CONF=$(CURDIR)/$(STATE)/slurm/slurm.conf; runner -m hydra/launcher=slurm_cpu ...
.PHONY: slurm slurm-stop
slurm:
	STATE=$(STATE) scripts/slurm_cluster.sh start
slurm-stop:
	STATE=$(STATE) scripts/slurm_cluster.sh stop

# Every claim at small scale: each `_small` preset in turn at the budget its YAML states (decided before its
# runs), then a second pass that adds seeds where the pilot's spread leaves a claim underpowered (the rule:
# runner/analysis/seeds.py), then docs/results.md (and README's summary) from the store. Re-running is the
# resume: runner skips finished configs and resumes interrupted ones. Safe to stop (Ctrl-C, or kill -TERM --
# -<make's pid>) and start again; each pass's time goes to $(STATE)/reproduce.log. JOBS trainings at once,
# each with its share of the cores (2 on 2 cores: one thread each). Sized to stay within 4 h on 2 cores of an
# AMD EPYC (the presets state their own estimates; README's Speed table has what was measured).
#   nohup make reproduce > reproduce.out 2>&1 &
#   make reproduce PRESETS="init_depth_small" STORE=runs.db    # one preset; STORE: a sqlite file or a URI
# EXTRA: overrides appended to every runner command (e.g. EXTRA="trainer.threads=2"); PAGE=0 skips the page.
# resnet_shortcuts_small is not in the list: every claim of resnet_shortcuts is `data: paper`.
PRESETS ?= init_depth_small prelu_vs_relu_small alexnet_ablations_small vgg_depth_small alexnet_relu_tanh_small \
	resnet_cifar_small
STORE ?=
JOBS ?= 2
EXTRA ?=
PAGE ?= 1
store_uri = $(if $(findstring ://,$(1)),$(1),sqlite:///$(1))
STORE_URI = $(call store_uri,$(or $(STORE),mlflow.db))
LAUNCH = $(if $(filter-out 1,$(JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS))
.PHONY: reproduce
reproduce: install-dev data
	@mkdir -p $(STATE); failed=""; \
	for pass in pilot seeds; do for p in $(PRESETS); do \
	  more=""; if [ $$pass = seeds ]; then \
	    more=$$($(PY) -m runner.analysis.seeds $$p --uri $(STORE_URI)) || exit 1; [ -n "$$more" ] || continue; \
	  fi; \
	  cmd="$(VENV)/bin/runner -m +experiment=$$p $$more$(if $(STORE), tracking.uri=$(STORE_URI)) $(LAUNCH)$(if $(EXTRA), $(EXTRA))"; \
	  echo "== $$cmd"; start=$$(date +%s); \
	  $$cmd; rc=$$?; \
	  printf '%s\t%s\t%s\t%ss\trc=%s\n' "$$(date -Iseconds)" "$$p" "$$pass" "$$(( $$(date +%s) - start ))" "$$rc" >> $(STATE)/reproduce.log; \
	  if [ $$rc -eq 130 ] || [ $$rc -eq 143 ]; then echo "reproduce: stopped in $$p; run the same command to go on"; exit $$rc; fi; \
	  [ $$rc -eq 0 ] || failed="$$failed $$p"; \
	done; done; \
	$(if $(filter 0,$(PAGE)),,$(PY) -m runner.analysis.results --uri $(STORE_URI) || exit 1;) \
	if [ -n "$$failed" ]; then echo "reproduce: these exited non-zero (see the page; a diverged seed counts):$$failed"; exit 1; fi

# Stability across thread counts: the same presets and passes, one job at a time with 2 torch threads each
# (float rounding may move a seed over an edge), into their own store (trainer.threads is not in the config
# hash: in mlflow.db they would be skipped as done) and their own checkpoints (else they would carry the
# 1-thread ones). Then the page from both stores: a verdict that differs between them reads fragile.
# Run it after `make reproduce`; resumable the same way. Three recipe lines, not one: `make -n` runs a line
# that calls $(MAKE), and only the first may (the page is written by the second), rc kept in $(STATE).
THREADS_STORE ?= mlflow-2threads.db
.PHONY: reproduce-threads
reproduce-threads:
	@mkdir -p $(STATE); $(MAKE) --no-print-directory reproduce JOBS=1 STORE=$(THREADS_STORE) PAGE=0 \
	  EXTRA="trainer.threads=2 trainer.ckpt_dir=checkpoints/2threads"; rc=$$?; \
	echo $$rc > $(STATE)/reproduce-threads.rc; [ $$rc -ne 130 ] && [ $$rc -ne 143 ]
	$(PY) -m runner.analysis.results --uri $(STORE_URI) --also $(call store_uri,$(THREADS_STORE))
	@exit $$(cat $(STATE)/reproduce-threads.rc)  # a preset that exited non-zero (reproduce named it) fails it

# The MLflow UI over the default store (./mlflow.db, ./mlartifacts) on 127.0.0.1:$(PORT).
# No GenAI job runners: MLflow 3 would start several processes of them for nothing here.
ui: install
	@echo "MLflow UI: http://127.0.0.1:$(PORT)/#/experiments  (store: sqlite:///$(CURDIR)/mlflow.db; Ctrl-C stops it)"
	MLFLOW_ALLOW_FILE_STORE=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
	  --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts \
	  --host 127.0.0.1 --port $(PORT) --workers 1

# A shared tracking server: PostgreSQL cluster under $(STATE)/postgres (loopback only), artifacts under
# $(STATE)/mlartifacts served over http, logins (MLflow's basic-auth app; the admin's password, drawn at the
# first start, in $(STATE)/mlflow-admin-password). Other machines: HOST=0.0.0.0 ALLOWED_HOSTS=<name>:$(PORT).
server: install-dev test-deps
	STATE=$(STATE) HOST=$(HOST) PORT=$(PORT) PGPORT=$(PGPORT) ALLOWED_HOSTS=$(ALLOWED_HOSTS) \
	  MLFLOW=$(VENV)/bin/mlflow scripts/pg_server.sh

# System packages the UI/server/SLURM tests drive: Chromium and its driver (Selenium), PostgreSQL, SLURM
# and munge (tests/e2e/test_slurm.py starts its own cluster with scripts/slurm_cluster.sh).
test-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v slurmctld >/dev/null || missing="$$missing slurmctld"; \
	command -v slurmd >/dev/null || missing="$$missing slurmd"; \
	command -v sbatch >/dev/null || missing="$$missing slurm-client"; \
	command -v munged >/dev/null || missing="$$missing munge"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing:$$missing (install them; the tests that need them skip)"; fi; \
	fi

clean:
	rm -rf outputs multirun checkpoints .pytest_cache .ruff_cache build dist
