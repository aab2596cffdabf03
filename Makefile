# chainrule: `make run` trains the demo network, `make test` runs the checks.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-plot: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,plot]"
	touch $@

run: $(VENV)/.installed-plot
	$(PY) -m chainrule demo

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check $(wildcard src tests benchmarks examples)

test: lint
	$(PY) -m pytest -m "not slow"

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
