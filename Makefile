# threadhost developer entry points. `make demo` and `make test` work on a fresh machine:
# each creates the virtual environment from pyproject.toml first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: setup demo test lint typecheck unit e2e clean docs docs-setup browser-setup interop-setup \
	screenshots

setup: $(VENV)/.installed

# The editable install is in setuptools' "compat" mode: a .pth file puts the checkout on
# sys.path, which mypy sees (the default mode's import hook is invisible to it: `mypy --strict`
# on a script that imports threadhost would fail with "Cannot find implementation or library
# stub"). tests/test_packaging.py checks it.
EDITABLE = --config-settings editable_mode=compat

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]" $(EDITABLE)
	touch $@

demo: setup
	$(PY) examples/demo.py

lint: setup
	$(PY) -m ruff check threadhost examples tests benchmarks tools

typecheck: setup
	$(PY) -m mypy threadhost examples tools

test: setup browser-setup interop-setup lint typecheck docs
	$(PY) -m pytest

# The dashboard's browser tests (tests/test_dashboard_browser.py) drive the system's Chromium
# through Playwright (which cannot download a browser of its own here): Debian's `chromium`
# package, installed when missing (apt-get as root, else through sudo). Under CI (CI set)
# a missing browser fails those tests instead of skipping them.
CHROMIUM ?= /usr/bin/chromium
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-setup:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The Node.js host (interop/node-host, docs/interop.md): its npm packages from the committed
# package-lock.json, when `node` is installed (without it tests/test_interop_node.py skips,
# saying why). Runs `npm ci` again only when package.json or package-lock.json changed.
NODE_HOST = interop/node-host
interop-setup:
	@if command -v node >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(NODE_HOST)/node_modules/.installed; \
	else \
		echo "interop-setup: node not found; the Node.js interop tests will be skipped"; \
	fi

$(NODE_HOST)/node_modules/.installed: $(NODE_HOST)/package.json $(NODE_HOST)/package-lock.json
	cd $(NODE_HOST) && npm ci --no-audit --no-fund
	touch $@

# The documentation site (mkdocs.yml) into site/, with --strict: a broken link between pages or
# a reference that does not build fails it. Offline; a few seconds. The `docs` extra is
# installed on first use (and again when pyproject.toml changes).
MKDOCS_ENV = NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true
docs-setup: $(VENV)/.docs-installed

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,docs]" $(EDITABLE)
	touch $@

docs: setup docs-setup
	$(MKDOCS_ENV) $(PY) -m mkdocs build --strict --quiet --site-dir site

unit: setup
	$(PY) -m pytest -m "not e2e"

e2e: setup browser-setup interop-setup
	$(PY) -m pytest -m e2e

# Renews the dashboard screenshots in docs/images/ (README, docs/dashboard.md) from the browser
# test; a plain test run writes them to a temporary folder and leaves the checkout alone.
screenshots: setup browser-setup
	THREADHOST_SCREENSHOTS=docs/images $(PY) -m pytest -q tests/test_dashboard_browser.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

# Full benchmark run (a few minutes): threadhost side by side with the seed's design and two
# hand-written floors; table on stdout, JSON in benchmarks/results/latest.json.
# See docs/performance.md. BENCH_ARGS=--quick for a smoke run.
.PHONY: bench
bench: setup
	$(PY) -m pip install --quiet -e ".[test,bench]" $(EDITABLE)
	$(PY) -m benchmarks $(BENCH_ARGS)

# Mutation testing, on demand only (never in CI; minutes per module): do the tests notice a
# wrong `<`, a dropped statement...? See docs/testing.md. Each target is
# MODULE:TESTS[,TESTS...], globs allowed, e.g.
#   make mutate MUTATE_TARGETS="threadhost/gate/routing.py:tests/test_gate_*.py" MUTATE_ARGS="-j 2"
MUTATE_TARGETS ?= threadhost/policy.py:tests/test_policy.py \
	threadhost/gate/states.py:tests/test_gate_states.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/routing.py:tests/test_gate_routing.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/supervision.py:tests/test_gate_supervision.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/maintenance.py:tests/test_gate_maintenance.py,tests/test_gate_ratelimit.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/pool.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/measure.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/attach.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/report.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/config.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/actions.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/poison.py:tests/test_gate_parts.py,tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py \
	threadhost/gate/core.py:tests/test_gate.py,tests/test_gate_pool.py,tests/test_gate_core.py,tests/test_gate_ratelimit.py
MUTATE_ARGS ?=
.PHONY: mutate
mutate: setup
	$(PY) -m tools.mutate $(MUTATE_ARGS) $(MUTATE_TARGETS)

# What a pool of hosts (serve --hosts N) buys, measured (about 3 minutes): maintenance
# rejections with 1/2/3 hosts, a host killed under load, throughput and CPU per call, a
# stuck host. Table on stdout, JSON in benchmarks/results/hosts.json. See docs/pool.md.
# BENCH_ARGS=--quick for a smoke run.
.PHONY: bench-hosts
bench-hosts: setup
	$(PY) -m benchmarks.hosts $(BENCH_ARGS)

# The fault campaign (about 5 minutes): 100 rounds with --hosts 1 and 100 with --hosts 2 of
# host SIGKILL during a fast and a slow call, os.abort in the library, a failing reload, a
# reload that fails verify, broker SIGKILL + restart, while client processes call; every
# call accounted for. Table on stdout, JSON in benchmarks/results/faults.json. See
# docs/reliability.md. BENCH_ARGS=--quick for a smoke run.
.PHONY: bench-faults
bench-faults: setup
	$(PY) -m benchmarks.faults $(BENCH_ARGS)

# CURVE on vs off (about a minute): latency, throughput and the first call of a new client,
# the same trivial service with and without keys, rounds interleaved. Table on stdout, JSON
# in benchmarks/results/curve.json. See docs/performance.md. BENCH_ARGS=--quick: smoke run.
.PHONY: bench-curve
bench-curve: setup
	$(PY) -m benchmarks.curve $(BENCH_ARGS)
