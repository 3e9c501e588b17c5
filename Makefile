# fender: the two commands of the README's quick start are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
DEMO_APP ?= examples.kvstore.app:app
DEMO_WORKERS ?= 2
# The store's two embedded SQLite nodes (KV_LOCAL_URL, KV_PEER_URL, when unset) live here.
DEMO_DATA ?= data
DEMO_URL = http://$(DEMO_HOST):$(DEMO_PORT)
LINTED := $(wildcard src tests bench examples scripts)

.PHONY: demo demo-serve demo-cluster test lint typecheck imports pytest realapps-oldest services readme bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalled when pyproject.toml changes.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,flask,fastapi,postgres]'
	touch $@

# What the reference service (examples/kvstore, a Flask app) needs.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[flask]'
	touch $@

## demo: the reference key-value store (examples/kvstore) in AP mode on embedded defaults (two
## SQLite nodes under ./data, the in-memory tier), served by `fender run` on 127.0.0.1:8000 in
## development: the protected pages (/status...) open from loopback without a token
demo: $(VENV)/.installed-demo demo-serve

# KV_MODE, KV_LOCAL_URL, KV_PEER_URL and FENDER_ENV from the shell win over these defaults.
demo-serve:
	@mkdir -p '$(DEMO_DATA)'
	@export FENDER_ENV="$${FENDER_ENV:-development}" KV_MODE="$${KV_MODE:-ap}" \
	  KV_LOCAL_URL="$${KV_LOCAL_URL:-sqlite:///$(DEMO_DATA)/kv-local.db}" \
	  KV_PEER_URL="$${KV_PEER_URL:-sqlite:///$(DEMO_DATA)/kv-peer.db}" \
	  FENDER_HOST='$(DEMO_HOST)' FENDER_PORT='$(DEMO_PORT)' \
	  WEB_WORKERS='$(DEMO_WORKERS)' GUNICORN_GRACEFUL_TIMEOUT=20; \
	title="fender demo: $(DEMO_APP), KV_MODE=$$KV_MODE, nodes $$KV_LOCAL_URL and"; \
	scripts/demo-hints.sh '$(DEMO_URL)' "$$title $$KV_PEER_URL (Ctrl-C stops it)"; \
	exec $(BIN)/fender run $(DEMO_APP)

## demo-cluster: two redis-servers, the store in CP mode on 127.0.0.1:5001 and in AP mode on
## 127.0.0.1:5002 (each the other's peer), and Prometheus scraping both on 127.0.0.1:9090;
## data and logs under ./data/cluster; Ctrl-C stops all of it
demo-cluster: $(VENV)/.installed-demo
	BIN='$(BIN)' exec scripts/demo-cluster.sh

## test: lint, type-check, import contract and the whole test suite, with real services; then
## the corpus of real apps again against the oldest FastAPI and Starlette fender supports
test: $(VENV)/.installed-dev services lint typecheck imports pytest realapps-oldest

services:
	@scripts/install-services.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

# pytest exits 5 when it collected nothing: a broken collection, never a pass.
pytest: $(VENV)/.installed-dev
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# The floors of the fastapi extra in pyproject.toml (keep them in step); .venv has the newest.
OLDEST_VENV ?= .venv-oldest
OLDEST_PINS := fastapi==0.115.2 starlette==0.40.0

$(OLDEST_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install -q -e '.[dev,flask,fastapi]' $(OLDEST_PINS)
	touch $@

## realapps-oldest: the corpus of real apps (tests/realapps) against the oldest FastAPI and Starlette
realapps-oldest: $(OLDEST_VENV)/.installed
	@$(OLDEST_VENV)/bin/python -c 'import fastapi, starlette; print("realapps-oldest: fastapi", fastapi.__version__, "starlette", starlette.__version__)'
	@$(OLDEST_VENV)/bin/pytest tests/realapps; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

## readme: regenerate the environment table of README.md from the settings model
readme: $(VENV)/.installed-dev
	$(BIN)/python scripts/readme_env_table.py --write

## mutate: mutation testing of the sans-I/O cores (mutmut; not part of `make test`): the share of
## mutants each core's unit tests kill, failing under 95% (MUTATE_ARGS=--keep reuses mutants/)
mutate: $(VENV)/.installed-dev
	$(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

## bench: every benchmark under bench/ (about 10-15 minutes on 2 cores), tables in
## bench/RESULTS.md; BENCH="request_path server" runs some. redis-server and wrk are installed
## when missing and run as root on Debian (without wrk, bench_server uses its asyncio client)
bench: $(VENV)/.installed-dev
	@need=(); command -v redis-server >/dev/null 2>&1 || need+=(redis-server); \
	command -v wrk >/dev/null 2>&1 || need+=(wrk); \
	if [ $${#need[@]} -gt 0 ]; then \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq >/dev/null \
	    && apt-get install -y -qq --no-install-recommends "$${need[@]}" >/dev/null; } \
	  || echo "bench: $${need[*]} missing (Debian: apt-get install $${need[*]})"; \
	fi
	$(BIN)/python bench/run.py $(BENCH)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
