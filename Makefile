# Every target creates what it needs on a fresh machine: the Python virtual
# environment (.venv) and the pinned CDK CLI (node_modules). No AWS credentials
# are needed for synth, test or lint.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
ENV ?= dev
CDK_FLAGS := --no-notices -c env=$(ENV)
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# Node 20 is what CI machines have; jsii prints a large end-of-life banner on every synth.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help setup setup-dev synth test lint deploy destroy diff clean pipeline pipeline-synth

help:
	@echo "make synth  [ENV=dev]   synthesize every stack of ENV into cdk.out (offline)"
	@echo "make test               run the whole test suite (offline, no Docker)"
	@echo "make lint               ruff"
	@echo "make deploy ENV=name    deploy ENV (needs AWS credentials and cdk bootstrap)"
	@echo "make destroy ENV=name   destroy ENV (see README: what each environment keeps)"
	@echo "make pipeline           deploy the CDK Pipelines pipeline (docs/pipeline.md)"

$(VENV)/.app-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.app-installed requirements-dev.txt requirements-model.txt requirements-eval.txt requirements-tools.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.app-installed node_modules/.installed
setup-dev: $(VENV)/.dev-installed node_modules/.installed

synth: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) synth $(CDK_FLAGS) --quiet

# Two workers (pytest-xdist): CI machines have 2 cores, and the suite is CPU-bound
# (synth, real-E5 model tests). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: setup-dev
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS)

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

diff: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) diff $(CDK_FLAGS) --all

deploy: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) deploy $(CDK_FLAGS) --all --require-approval broadening

destroy: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) destroy $(CDK_FLAGS) --all --force

# The pipeline (docs/pipeline.md). Only top-level stacks are deployed: the
# pipeline stack and its cross-region support stacks; the pipeline deploys the
# environments itself. pipeline-synth is what the pipeline's own build runs.
PIPELINE_FLAGS := --no-notices -c pipeline=true

pipeline-synth: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) synth $(PIPELINE_FLAGS) --quiet

pipeline: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK) deploy $(PIPELINE_FLAGS) --all --require-approval broadening

clean:
	rm -rf cdk.out build .pytest_cache
