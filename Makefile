# driftloop: `make demo` and `make test` set up everything they need from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12 is the Lambda and training-container runtime: the project venv uses it whatever `python3` is.
PYTHON312 ?= $(shell for py in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12.*/bin/python 2>/dev/null | sort -V -r); do \
	$$py -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { command -v $$py; break; }; done)
UV_VERSION := 0.13.8
TOOLS := .cache/tools
UV := $(TOOLS)/bin/uv
# infra/bundling.py exports the Lambda requirements from uv.lock with this uv.
export UV := $(CURDIR)/$(UV)
VENV := .venv
BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.driftloop-setup
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: help setup demo test lint typecheck unit infra-check integration bench bench-training bench-scale bench-evaluate synth clean local-setup local-up local-down local-lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it or pass PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SETUP_STAMP): $(UV) uv.lock pyproject.toml package.json package-lock.json Makefile
	UV_PYTHON=$(PYTHON312) $(UV) sync --frozen --extra training --extra infra --extra local --extra monitor --extra workflow --extra sagemaker
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(SETUP_STAMP) ## install the locked Python environment (.venv) and the pinned CDK CLI (node_modules)

demo: setup local-setup ## the closed loop on a local AWS, narrated (ARGS=--keep leaves it running)
	$(BIN)/driftloop demo $(ARGS)

lint: setup ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup ## mypy, strict
	$(BIN)/mypy infra functions training cli localcloud tests

unit: setup ## unit and stack tests
	$(BIN)/pytest -m "not integration"

infra-check: setup ## synthesize the CDK app offline, then cdk-nag (during synth) and cfn-lint on every template
	rm -rf cdk.out
	npx cdk synth --quiet
	$(BIN)/python -m infra.lint cdk.out

integration: setup local-setup ## integration tests: the app deployed to a local AWS (one LocalStack, one deployment)
	$(BIN)/pytest -m integration

test: lint typecheck unit infra-check integration ## everything CI runs

bench: setup ## inference benchmark: driftloop vs a FastAPI + scikit-learn + pandas reference
	$(BIN)/python -m tests.benchmarks.bench_inference
	$(BIN)/python -m tests.benchmarks.bench_capture
	$(BIN)/python -m tests.benchmarks.bench_body

bench-training: setup ## training benchmark: 10k, 100k and 1M rows with the workflow's hyperparameters (~10 min)
	$(BIN)/python -m tests.benchmarks.bench_training

bench-evaluate: setup ## holdout benchmark: the HoldOut and Evaluate steps at 10k, 100k and 1M training rows (~5 min)
	$(BIN)/python -m tests.benchmarks.bench_evaluate $(ARGS)

bench-scale: setup local-setup ## scale benchmark: the monitor and Assemble at 10k, 100k and 1M captures on the local cloud (~15 min)
	$(BIN)/python -m tests.benchmarks.bench_scale $(ARGS)

synth: setup ## cdk synth (offline, no Docker)
	npx cdk synth

# -- local AWS: LocalStack without Docker (localcloud/) ---------------------------------------------------------------
# LocalStack 2026.3.0 needs Python 3.13 and pins its own boto3: it gets its own venv, installed from the lock file
# with verified hashes, plus driftloop's extension (editable: code changes apply at the next start). Lambda
# functions run in a Python 3.12 venv with awslambdaric and the boto3 of uv.lock. Only PyPI is used, at install.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set, LocalStack would otherwise compile its
# sources at every start (about 10 s instead of 3).
PYTHON313 ?= $(shell for py in python3.13 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13.*/bin/python 2>/dev/null | sort -V -r); do \
	$$py -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { command -v $$py; break; }; done)
LOCAL := localcloud
LOCALSTACK_VENV := .cache/localstack-venv
LAMBDA_RUNTIME_VENV := .cache/lambda-runtime-venv
LOCAL_STAMP := $(LOCALSTACK_VENV)/.driftloop-setup

$(LOCAL_STAMP): $(UV) $(LOCAL)/requirements.txt $(LOCAL)/lambda-runtime.txt $(LOCAL)/extension/pyproject.toml
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found: install it or pass PYTHON313=/path/to/python3.13"; exit 1; }
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it or pass PYTHON312=/path/to/python3.12"; exit 1; }
	rm -rf $(LOCALSTACK_VENV) $(LAMBDA_RUNTIME_VENV)
	$(UV) venv --quiet --python $(PYTHON313) $(LOCALSTACK_VENV)
	VIRTUAL_ENV=$(LOCALSTACK_VENV) $(UV) pip sync --quiet --require-hashes --compile-bytecode $(LOCAL)/requirements.txt
	VIRTUAL_ENV=$(LOCALSTACK_VENV) $(UV) pip install --quiet --no-deps --no-build-isolation -e $(LOCAL)/extension
	$(UV) venv --quiet --python $(PYTHON312) $(LAMBDA_RUNTIME_VENV)
	VIRTUAL_ENV=$(LAMBDA_RUNTIME_VENV) $(UV) pip sync --quiet --require-hashes --compile-bytecode $(LOCAL)/lambda-runtime.txt
	touch $@

local-setup: $(LOCAL_STAMP) ## build the LocalStack venv and the Lambda runtime venv from their lock files

local-up: setup local-setup ## start the local AWS (LocalStack, no Docker) and print its environment
	$(BIN)/driftloop local up

local-down: setup ## stop the local AWS
	$(BIN)/driftloop local down

local-lock: $(UV) ## re-resolve localcloud's lock files (after editing its *.in files, or when uv.lock changes boto3)
	cd $(LOCAL) && $(UV) pip compile --quiet --python-version 3.13 --generate-hashes \
		--custom-compile-command "make local-lock" requirements.in -c constraints.txt -o requirements.txt
	mkdir -p .cache/local-lock
	$(UV) export --quiet --frozen --no-dev --no-hashes --no-emit-project --no-header --format requirements-txt \
		-o .cache/local-lock/uv-constraints.txt
	cd $(LOCAL) && $(UV) pip compile --quiet --python-version 3.12 --generate-hashes \
		--custom-compile-command "make local-lock" lambda-runtime.in -c ../.cache/local-lock/uv-constraints.txt \
		-o lambda-runtime.txt

clean: ## remove generated files (keeps the environment)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache demo-output bench-output
