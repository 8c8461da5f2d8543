# The two commands of README.md: `make demo` and `make test`. Everything they
# need is installed from here; pip's wheel cache (~/.cache/pip) is reused.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test install bench clean es-up es-down

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

MODEL := var/models/current
EXAMPLE := 坐席：您好，12345热线。市民：喂，我们海陵区城东街道梅兰新村停水两天了，一点水都没得，物业也不管。

## make demo: install, generate and import the demo data, train the default model, route an example call.
demo: install
	$(BIN)/hotline demo
	test -f $(MODEL)/manifest.json || $(BIN)/hotline train --data var/demo/calls.csv --text-col transcript \
		--label-col category_l1,category_l2 --department-col department --out $(MODEL)
	$(BIN)/hotline route --model $(MODEL) "$(EXAMPLE)"

## make test: install (with the transformer extra) and run every test (pytest fails when no test runs).
## The search tests start their own Elasticsearch node on a free 127.0.0.1 port and stop it at the end;
## the page tests drive Debian's headless Chromium (installed here when missing).
test: $(VENV)/.installed-transformer
	scripts/install-browser
	$(BIN)/python -m pytest

## make bench: the benchmarks whose figures are in BENCHMARKS.md.
bench: install
	$(BIN)/python bench/segmentation.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/demo_data.py
	$(BIN)/python bench/classify.py

## make es-up / es-down: a local Elasticsearch node on 127.0.0.1:9200 (downloaded once into ~/.cache/hotline).
es-up: install
	$(BIN)/python -m search.node up

es-down: install
	$(BIN)/python -m search.node down

clean:
	rm -rf $(VENV) var .pytest_cache
