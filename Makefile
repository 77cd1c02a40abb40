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

AWS_DIR := deploy/aws
AWS_VENV := .venvs/aws
CHECKOV_VENV := .venvs/checkov
CFN_GUARD := $(AWS_DIR)/node_modules/@cdklabs/cdk-validator-cfnguard/bin/ubuntu/x86_64/cfn-guard
AWS_WORK := .work/aws
AWS_LAYERS = $(shell $(AWS_VENV)/bin/python $(AWS_DIR)/stacks.py layers)
AWS_ENVS = $(shell $(AWS_VENV)/bin/python $(AWS_DIR)/stacks.py environments)

$(AWS_VENV)/.installed: requirements/aws.lock
	rm -rf $(AWS_VENV) && $(PYTHON) -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/pip install -q --require-hashes -r requirements/aws.lock
	touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.lock
	rm -rf $(CHECKOV_VENV) && $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --require-hashes -r requirements/checkov.lock
	touch $@

$(CFN_GUARD): $(AWS_DIR)/package.json $(AWS_DIR)/package-lock.json
	cd $(AWS_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: aws-tools
aws-tools: $(AWS_VENV)/.installed $(CHECKOV_VENV)/.installed $(CFN_GUARD)

.PHONY: verify-aws
verify-aws: aws-tools ## lint, policy-check and smoke-deploy the CloudFormation stacks offline
	rm -rf $(AWS_WORK) && mkdir -p $(AWS_WORK)
	@echo "== cfn-lint $$($(AWS_VENV)/bin/cfn-lint --version), every template with each environment's parameters"
	for env in $(AWS_ENVS); do for layer in $(AWS_LAYERS); do \
	  $(AWS_VENV)/bin/python $(AWS_DIR)/stacks.py parameters $$env $$layer > $(AWS_WORK)/$$env-$$layer.json; \
	  $(AWS_VENV)/bin/cfn-lint --parameter-files $(AWS_WORK)/$$env-$$layer.json -- $(AWS_DIR)/templates/$$layer.yaml; \
	done; done
	@echo "== cfn-guard $$($(CFN_GUARD) --version), rules in $(AWS_DIR)/guard/ with each environment's parameters"
	for env in $(AWS_ENVS); do \
	  $(AWS_VENV)/bin/python $(AWS_DIR)/stacks.py guard-parameters $$env > $(AWS_WORK)/$$env-guard.json; \
	  $(CFN_GUARD) validate --rules $(AWS_DIR)/guard --data $(AWS_DIR)/templates \
	    --input-params $(AWS_WORK)/$$env-guard.json --show-summary fail; \
	done
	@echo "== checkov $$($(CHECKOV_VENV)/bin/checkov --version)"
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact \
	  --framework cloudformation -d $(AWS_DIR)/templates
	@echo "== shellcheck $$(shellcheck --version | sed -n 's/^version: //p') (apt: shellcheck)"
	shellcheck $(AWS_DIR)/*.sh
	@echo "== pytest: stack wiring, house rules, guard rules, deploy scripts, moto smoke deploy"
	CFN_GUARD=$(CFN_GUARD) $(AWS_VENV)/bin/python -m pytest -q tests/infra/aws

.PHONY: lock-aws
lock-aws: ## re-pin the AWS verification tools after editing requirements/aws.in or checkov.in
	uv pip compile requirements/aws.in --python-version 3.11 --generate-hashes -q -o requirements/aws.lock
	uv pip compile requirements/checkov.in --python-version 3.11 --generate-hashes -q -o requirements/checkov.lock

.PHONY: deploy-aws
deploy-aws: $(AWS_VENV)/.installed ## deploy the stacks to ENV=qa|prod in order (DRY_RUN=1: change sets only)
	@test -n "$(ENV)" || { echo "usage: make deploy-aws ENV=qa|prod [DRY_RUN=1]" >&2; exit 2; }
	PATH=$(CURDIR)/$(AWS_VENV)/bin:$$PATH PYTHON=$(AWS_VENV)/bin/python DRY_RUN=$(DRY_RUN) \
	  $(AWS_DIR)/deploy.sh $(ENV)

.PHONY: teardown-aws
teardown-aws: $(AWS_VENV)/.installed ## delete the stacks of ENV=qa|prod in reverse order (needs CONFIRM=ENV)
	@test -n "$(ENV)" || { echo "usage: make teardown-aws ENV=qa|prod CONFIRM=qa|prod" >&2; exit 2; }
	PATH=$(CURDIR)/$(AWS_VENV)/bin:$$PATH PYTHON=$(AWS_VENV)/bin/python CONFIRM=$(CONFIRM) \
	  $(AWS_DIR)/teardown.sh $(ENV)

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
