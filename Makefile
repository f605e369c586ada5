# The two set-up commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
REDIS_PORT ?= 6379
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
# The HTTP server: granian (the default) or uvicorn (`make run SERVER=uvicorn`); api/serve.py
# holds each one's flags.
SERVER ?= granian
REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
CLUSTER_BASE_PORT ?= 7000
# Every node of `make cluster` as a seed: any one that answers gives the slot map.
CLUSTER_URL ?= redis+cluster://$(shell for i in 0 1 2 3 4 5; do printf '127.0.0.1:%s,' $$(($(CLUSTER_BASE_PORT)+i)); done | sed 's/,$$//')

.PHONY: install redis-server chromium run test lint clean bench bench-endpoints bench-scripts ticket-key \
	cluster cluster-status cluster-stop run-cluster bench-cluster bench-overload bench-connections \
	bench-drop bench-stress bench-hot

install: $(VENV)/.installed redis-server chromium

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Redis 7 is needed (script flags, AOF directory). Debian's package when we may install it.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's redis-server"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server (7.x) is not on PATH: install it (apt-get install redis-server, brew install redis) and rerun"; exit 1; \
	  fi; \
	fi
	@v=$$(redis-server --version | sed -E 's/.*v=([0-9]+).*/\1/'); \
	  if [ "$$v" -lt 7 ]; then echo "redis-server $$v found; 7.x or newer is needed"; exit 1; fi

# Headless Chromium and its driver for the booking page's browser tests (tests/test_page.py
# skips them without both). Debian's packages when we may install them: Selenium's own driver
# manager would download a browser, and there may be no internet.
chromium:
	@if ! command -v chromedriver >/dev/null 2>&1 || \
	    ! { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium and chromium-driver"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "chromium and chromedriver are not on PATH: the browser tests will be skipped" \
	      "(apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER)"; \
	  fi; \
	fi

# Redis with the repo's redis.conf (data in var/), the demo data, then the API with one worker
# per core (metrics summed over them in var/prometheus) under $(SERVER). Ctrl-C stops both; the
# AOF in var/ keeps the data for the next `make run`. Tickets are signed with
# TICKET_SIGNING_KEY(_FILE), or else with var/ticket-signing-key.pem, made on the first run and
# kept (like the data: the tickets it signed stay valid). For 10,000 connections: the open-file
# limit goes up to the hard one here (`ulimit -n`) and again in api/serve.py (which also sets
# each server's backlog, connections per worker and keep-alive).
run: install ticket-key
	@mkdir -p var && rm -rf var/prometheus && mkdir -p var/prometheus
	@if redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
	  echo "something already answers on port $(REDIS_PORT); stop it or use REDIS_PORT=..."; exit 1; fi
	@redis-server $(CURDIR)/redis.conf --port $(REDIS_PORT) --dir $(CURDIR)/var --logfile $(CURDIR)/var/redis.log & \
	  rpid=$$!; trap 'kill $$rpid 2>/dev/null; wait $$rpid 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	  REDIS_URL=$(REDIS_URL) $(PY) -m engine seed && \
	  echo "API on http://$(HOST):$(PORT)  (Redis on port $(REDIS_PORT), log in var/redis.log)" && \
	  ulimit -n "$$(ulimit -Hn)" 2>/dev/null; \
	  REDIS_URL=$(REDIS_URL) PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus \
	    $(PY) -m api.serve --server $(SERVER) --host $(HOST) --port $(PORT) --workers $(WORKERS)

# The key `make run` signs tickets with when the environment names none: every worker loads
# the same file (engine/tickets.py).
TICKET_KEY_FILE := $(CURDIR)/var/ticket-signing-key.pem
ifeq ($(TICKET_SIGNING_KEY)$(TICKET_SIGNING_KEY_FILE),)
run run-cluster: export TICKET_SIGNING_KEY_FILE := $(TICKET_KEY_FILE)
endif
ticket-key: install
	@if [ "$$TICKET_SIGNING_KEY_FILE" = "$(TICKET_KEY_FILE)" ] && [ ! -f "$(TICKET_KEY_FILE)" ]; then \
	  mkdir -p var && $(PY) -m engine ticket-key --out "$(TICKET_KEY_FILE)"; fi

# A local Redis Cluster left running in the background: 3 masters + 3 replicas from the repo's
# redis.conf, data in var/cluster/<port>/, ports CLUSTER_BASE_PORT..+5 (default 7000-7005) and
# their cluster bus ports +10000. Waits until every replica has synced, then prints REDIS_URL
# and a line per node; a second `make cluster` only prints them. `make cluster-status` (or
# `.venv/bin/python -m devstack cluster status`) shows roles, slots and links.
cluster: install
	$(PY) -m devstack cluster start --base-port $(CLUSTER_BASE_PORT)

cluster-status: install
	$(PY) -m devstack cluster status

# The API with demo data on that cluster (started first when it is not running), its answers
# to changes sent once a replica has them (REDIS_WAIT_REPLICAS=1). Ctrl-C stops the API; the
# cluster keeps running until `make cluster-stop`.
run-cluster: cluster ticket-key
	@mkdir -p var && rm -rf var/prometheus && mkdir -p var/prometheus
	@REDIS_URL=$(CLUSTER_URL) $(PY) -m engine seed && \
	  echo "API on http://$(HOST):$(PORT)  (REDIS_URL=$(CLUSTER_URL))" && \
	  REDIS_URL=$(CLUSTER_URL) REDIS_WAIT_REPLICAS=$${REDIS_WAIT_REPLICAS:-1} \
	    PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus \
	    $(PY) -m api.serve --server $(SERVER) --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Stops the cluster's nodes and keeps their data for the next `make cluster` (`.venv/bin/python
# -m devstack cluster stop --wipe` removes it).
cluster-stop: install
	$(PY) -m devstack cluster stop

test: install
	$(VENV)/bin/ruff check engine api devstack loadtests tests examples
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check engine api devstack loadtests tests examples

clean:
	rm -rf $(VENV) var .pytest_cache *.egg-info

# Each endpoint under wrk, under uvicorn and granian, as a ratio to a bare Starlette hello on the
# same server, on each backend (needs wrk: apt-get install wrk); then big venues (a catalogue
# load, the seat list of 50 to 100,000 seats). BENCH_ARGS="--servers granian --backends single".
bench-endpoints: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "wrk is needed: apt-get install wrk"; exit 1; }
	$(PY) -m loadtests.http_bench.endpoints $(BENCH_ARGS)
	$(PY) -m loadtests.http_bench.venue

# One worker offered twice what it serves, MAX_IN_FLIGHT on and off, under each server.
bench-overload: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "wrk is needed: apt-get install wrk"; exit 1; }
	$(PY) -m loadtests.http_bench.overload $(BENCH_ARGS)

# 10,000 keep-alive connections against one worker of each server: latency, RSS per 1,000, and
# what binds first without api/serve.py's limits.
bench-connections: install
	@ulimit -n "$$(ulimit -Hn)" 2>/dev/null; $(PY) -m loadtests.http_bench.connections $(BENCH_ARGS)

# What more masters buy here: a multi-concert mix on 1 vs 3 masters (Redis CPU per master),
# and the tick of 1,000 concerts on 3 masters with 4 workers (with and without the lease).
bench-cluster: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "wrk is needed: apt-get install wrk"; exit 1; }
	$(PY) -m loadtests.http_bench.masters $(BENCH_ARGS)

# Each Lua script alone on Redis (CPU µs a call), then its cost from 1k to 1M waiting tokens.
bench-scripts: install
	$(PY) -m loadtests.script_bench.scripts
	$(PY) -m loadtests.script_bench.scaling

# One concert that everybody wants, at the script level: 10,000,000 waiters' memory, the
# opening, each queue call's Redis CPU and a second of the waiting room, then on a local
# cluster of 1 and of 3 masters (1,000,000 each). HOT_ARGS="--waiters 1000000" for a quick one.
bench-hot: install
	$(PY) -m loadtests.script_bench.hot --cluster 1,3 $(HOT_ARGS)

# The report's seven locust scenarios scaled to ~4 minutes on 2 cores: CSVs, PNG charts and
# report.md (beside the report's figures) in loadtests/results/<timestamp>/.
# LOADTEST_ARGS="-p 2", "--scale report" (the report's own loads), "-u 300 -t 20", ...
bench: install
	$(PY) -m loadtests run all --scale small $(LOADTEST_ARGS)

# A ticket drop end to end (loadtests/drop/): catalog/drop.json (5,000 seats) loaded through
# the admin API, opensAt a few seconds ahead, 20,000 simulated buyers (the asyncio generator),
# the books checked through the API and the event stream; report.md and PNG charts in
# loadtests/results/<time>-drop/. About 2-3 minutes here. DROP_ARGS="-u 5000",
# "--generator both" (the same drop under locust too, side by side), ...
bench-drop: install
	$(PY) -m loadtests run drop $(DROP_ARGS)

# Ramp the report's §6 and §7 users until p99 passes 50 ms or failures appear: the knee
# (users, req/s, p99) and a chart in loadtests/results/<time>-stress/. STRESS_ARGS="s7",
# "--generator locust", "--p99 100", ...
bench-stress: install
	$(PY) -m loadtests run stress $(STRESS_ARGS)
