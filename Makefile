# threadhost developer entry points. `make demo` and `make test` work on a fresh machine:
# each creates the virtual environment from pyproject.toml first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: setup demo test lint typecheck unit e2e clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(PY) examples/demo.py

lint: setup
	$(PY) -m ruff check threadhost examples tests benchmarks

typecheck: setup
	$(PY) -m mypy threadhost examples

test: setup lint typecheck
	$(PY) -m pytest

unit: setup
	$(PY) -m pytest -m "not e2e"

e2e: setup
	$(PY) -m pytest -m e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
