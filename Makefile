# The two commands of README.md: `make demo` and `make test`. Everything they
# need is installed from here; pip's wheel cache (~/.cache/pip) is reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## make demo: install, generate the demo data, import it and show a summary.
demo: install
	$(BIN)/hotline demo

## make test: install and run every test (pytest fails when no test runs).
test: install
	$(BIN)/python -m pytest

## make bench: the benchmarks whose figures are in BENCHMARKS.md.
bench: install
	$(BIN)/python bench/segmentation.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/demo_data.py

clean:
	rm -rf $(VENV) var .pytest_cache
