# The verbs a person types. Pipelines (.github/workflows/) and .ci/run only call these targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---------------------------------------------------------------------------------------------
# The service: run it, test it, measure it
# ---------------------------------------------------------------------------------------------

$(BIN)/.installed: requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## create .venv with the pinned dependencies

.PHONY: run
run: venv ## run the service on 127.0.0.1:8000 with a local SQLite database
	$(BIN)/registro serve

.PHONY: test
test: venv ## the service's tests: unit and integration (real PostgreSQL), with coverage
	$(BIN)/pytest tests/unit tests/integration --cov=registro --cov-report=term:skip-covered

.PHONY: lint
lint: venv ## ruff (lint and format) and mypy --strict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

.PHONY: fmt
fmt: venv ## format and auto-fix what ruff can
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

.PHONY: bench
bench: venv ## the service against the raw reference on PostgreSQL; writes docs/benchmarks.md
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

.PHONY: lock
lock: venv ## re-pin the dependencies after editing pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -q -o requirements/dev.lock

# ---------------------------------------------------------------------------------------------
# AWS infrastructure (deploy/aws/)
# ---------------------------------------------------------------------------------------------

.PHONY: verify-aws
verify-aws: ## lint, policy-check and smoke-deploy the CloudFormation stacks offline
	@echo "verify-aws: not built yet" >&2; exit 1

# ---------------------------------------------------------------------------------------------
# Kubernetes delivery (deploy/k8s/) and pipelines (.github/workflows/)
# ---------------------------------------------------------------------------------------------

.PHONY: verify-k8s
verify-k8s: ## render and validate every kustomize overlay offline
	@echo "verify-k8s: not built yet" >&2; exit 1

# ---------------------------------------------------------------------------------------------
# Images and the local production-like stack (deploy/docker/, compose.yaml)
# ---------------------------------------------------------------------------------------------

.PHONY: e2e
e2e: ## start the stack and run the drills against it
	@echo "e2e: not built yet" >&2; exit 1
