# chainrule: `make run` trains the demo network, `make test` runs the checks, `make docs` builds the site.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow fuzz lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-plot: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[plot]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,plot,browser,mpi,fast,docs]"
	touch $@

run: $(VENV)/.installed-plot
	$(PY) -m chainrule demo

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check $(wildcard src tests benchmarks examples tools)

test: lint
	$(PY) -m pytest -m "not slow"

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -m slow

# the property-based tests at full size (over 10,000 generated cases)
fuzz: $(VENV)/.installed-dev
	CHAINRULE_FUZZ_EXAMPLES=750 $(PY) -m pytest tests/test_fuzz.py -q

# `make bench` (QUICK=1: about 6 minutes; CHECK=1: fail on a regression against the baseline)
.PHONY: bench
$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py $(if $(filter 1 yes true,$(QUICK)),--quick) $(if $(filter 1 yes true,$(CHECK)),--check)

# `make docs`: the documentation site in site/ (open site/index.html), tutorials executed, strict
.PHONY: docs
$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache
