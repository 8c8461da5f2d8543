# The two commands of README.md: `make demo` and `make test`. Everything they
# need is installed from here; pip's wheel cache (~/.cache/pip) is reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test check lint install bench bench-encoder clean es-up es-down pg-up pg-down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[test]"
	touch $@

# The tests also fine-tune a tiny BERT: torch and transformers (a large wheel, cached by pip).
$(VENV)/.installed-transformer: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,transformer]"
	touch $@

install: $(VENV)/.installed

PORT ?= 8000

## make demo: install, generate and import 400 days of demo calls, then serve the app on the embedded store.
## On first start the service trains and activates a model from the imported labels and prints its API keys.
demo: install
	$(BIN)/hotline demo
	$(BIN)/hotline serve --host 127.0.0.1 --port $(PORT)

## make test: install (with the transformer extra) and run every test (pytest fails when no test runs).
## The search tests start their own Elasticsearch node on a free 127.0.0.1 port and stop it at the end;
## the store tests start their own PostgreSQL the same way (Debian's package, installed here when missing);
## the page tests drive Debian's headless Chromium (installed here when missing).
test: $(VENV)/.installed-transformer lint
	scripts/install-browser
	scripts/install-postgresql
	$(BIN)/python -m pytest

## make check: lint, types and the unit tier (no server, no fine-tuning): about a minute, before each commit.
check: $(VENV)/.installed-transformer lint
	$(BIN)/python -m pytest -q -m unit -n auto --dist loadfile

## make lint: ruff and mypy over the code (settings in pyproject.toml); make test and make check run it.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

## make bench: the benchmarks whose figures are in BENCHMARKS.md (a few hours on two cores), and the README's
## tour on a fresh demo store; make bench-encoder: those that fine-tune the encoder (many hours on a CPU).
bench: install
	$(BIN)/python bench/readme.py --fresh
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/segmentation.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/store_backends.py
	$(BIN)/python bench/demo_data.py
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/departments.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/hotspots.py
	$(BIN)/python bench/api_load.py
	$(BIN)/python bench/retrain.py
	$(BIN)/python bench/long_texts.py
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/pii.py
	$(BIN)/python bench/pg_outage.py
	$(BIN)/python bench/unclear.py
	for t in transcript pii import; do $(BIN)/python bench/fuzz.py --target=$$t -max_total_time=60; done

bench-encoder: $(VENV)/.installed-transformer
	$(BIN)/python bench/encoder.py
	$(BIN)/python bench/int8_layers.py
	$(BIN)/python bench/neighbours.py
	$(BIN)/python bench/pretrain.py

## make es-up / es-down: a local Elasticsearch node on 127.0.0.1:9200 (downloaded once into ~/.cache/hotline).
es-up: install
	$(BIN)/python -m search.node up

es-down: install
	$(BIN)/python -m search.node down

## make pg-up / pg-down: a local PostgreSQL on 127.0.0.1:5433 (a cluster in $TMPDIR/hotline-postgresql);
## pg-up prints its postgresql:// URL last: HOTLINE_STORE set to it makes every command and `hotline serve` use it.
pg-up: install
	@scripts/install-postgresql
	@$(BIN)/python -m hotline.store.pgserver up

pg-down: install
	@$(BIN)/python -m hotline.store.pgserver down

clean:
	rm -rf $(VENV) var .pytest_cache
