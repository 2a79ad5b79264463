# enas-service: `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install browser demo test cluster-test lint bench clean

install: $(STAMP)

# torch==2.13.0 first: pip takes the CPU build from this machine's disk (a plain `torch` would
# download a multi-GB CUDA build); the project's torch range admits 2.13.0, so nothing more comes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) scripts/demo.py $(DEMO_ARGS)

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The real `docker compose up` test (tests/compose/): installs Docker from Debian's packages and
# starts dockerd when missing, builds the images (base image by debootstrap, cached), runs a demo
# search across Ray worker containers, kills the one holding the search's actors mid-search (ENAS_COMPOSE_VICTIM=shared|idle), times
# 2 vs 1 nodes, tears all down. About 7 minutes from a cold Docker cache; .ci/run runs it after `make test`.
# tests/cluster (ENAS_CLUSTER_TEST=1, Ray nodes as processes, the worker in its own namespaces) is
# not run here yet: large objects never reach the namespaced node (docs/INTERNALS.md, Losing a node).
cluster-test: install
	ENAS_COMPOSE_TEST=1 $(PY) -m pytest -q -s tests/compose $(PYTEST_ARGS)

# The browser test drives Debian's chromium through chromium-driver; installed once, when missing
# (the test skips, saying so, where they cannot be installed).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) || \
	  echo "chromium could not be installed: the browser test will be skipped"

# CPU benchmarks (bench/README.md): demo sizes, the paper's sizes for one step, the service; one
# JSON object per result line on stdout (BENCH_OUT=file also keeps them), a summary table last.
# One torch thread per process: on a shared 2-core machine two threads thrash (see bench/RESULTS.md).
BENCH_OUT ?= .enas/bench.jsonl
BENCH_ARGS ?= --threads 1 --out $(BENCH_OUT)
bench: install
	mkdir -p $(dir $(BENCH_OUT)) && rm -f $(BENCH_OUT)
	$(PY) -m bench.controller $(BENCH_ARGS)
	$(PY) -m bench.shared_train --sizes demo $(BENCH_ARGS)
	$(PY) -m bench.shared_train --sizes paper --spaces micro,macro --steps 1 --no-ray $(BENCH_ARGS)
	$(PY) -m bench.static_child --sizes demo --archs 1 --compile-spaces micro --memory $(BENCH_ARGS)
	$(PY) -m bench.static_child --sizes paper --memory-only --steps 2 $(BENCH_ARGS)
	$(PY) -m bench.service --out $(BENCH_OUT)
	$(PY) -m bench.summary $(BENCH_OUT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy enas_core service

clean:
	rm -rf .enas .pytest_cache .ruff_cache .mypy_cache
