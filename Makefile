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

.PHONY: verify-k8s
verify-k8s: ## render and validate every kustomize overlay offline
	@echo "verify-k8s: not built yet" >&2; exit 1

# ---------------------------------------------------------------------------------------------
# Images and the local production-like stack (deploy/docker/, compose.yaml)
# ---------------------------------------------------------------------------------------------

DOCKER ?= /usr/bin/docker
export DOCKER_BUILDKIT := 1
BASE_IMAGE ?= debian:bookworm-slim
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

$(E2E_VENV)/.installed: requirements/e2e.lock
	$(PYTHON) -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/pip install -q --require-hashes -r requirements/e2e.lock
	touch $@

.PHONY: docker
docker: ## install Docker (docker.io, docker-compose) and start dockerd if absent
	deploy/docker/ensure-docker.sh

.PHONY: docker-stop
docker-stop: ## stop the dockerd that `make docker` started (if it did)
	if [ -s /run/registro-dockerd.pid ]; then kill "$$(cat /run/registro-dockerd.pid)"; rm -f /run/registro-dockerd.pid; fi

.PHONY: base-image
base-image: ## pull $(BASE_IMAGE), or build it with debootstrap where it cannot be pulled
	BASE_IMAGE=$(BASE_IMAGE) DOCKER=$(DOCKER) deploy/docker/base-image.sh

.PHONY: image
image: base-image ## build the service image registro:$(TAG)
	$(DOCKER) build -f deploy/docker/registro/Dockerfile -t registro:$(TAG) \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) \
		--build-arg GIT_COMMIT=$(GIT_COMMIT) --build-arg BUILD_TIME=$(BUILD_TIME) \
		$(if $(wildcard $(PIP_CA_BUNDLE)),--secret id=cacert$(comma)src=$(PIP_CA_BUNDLE)) .
	@size=$$($(DOCKER) image inspect -f '{{.Size}}' registro:$(TAG)); \
	echo "registro:$(TAG) $$((size / 1000000)) MB"; \
	if [ $$size -gt 200000000 ]; then echo "image: registro:$(TAG) exceeds 200 MB" >&2; exit 1; fi

.PHONY: images
images: image ## build every image of the stack (service, HAProxy, Patroni, etcd, Prometheus, exporter)
	for c in $(INFRA_IMAGES); do \
		$(DOCKER) build -q --build-arg BASE_IMAGE=$(BASE_IMAGE) -t registro-$$c:$(INFRA_TAG) deploy/docker/$$c >/dev/null; \
		echo "registro-$$c:$(INFRA_TAG)"; \
	done

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
	$(E2E_VENV)/bin/python deploy/docker/stackctl.py rollout $(TAG)

.PHONY: canary-local
canary-local: $(E2E_VENV)/.installed ## one replica of registro:$(TAG) at 10%, analysed, promoted or aborted (FAULT_ERROR_RATE=0.2 to inject)
	$(E2E_VENV)/bin/python deploy/docker/stackctl.py canary $(TAG) --fault-error-rate $(or $(FAULT_ERROR_RATE),0)

.PHONY: e2e
e2e: $(E2E_VENV)/.installed docker ## start the stack and run the drills against it; always stops it
	rc=0; $(MAKE) stack-up && $(E2E_VENV)/bin/pytest -c tests/e2e/pytest.ini --rootdir . tests/e2e || rc=$$?; \
	$(MAKE) stack-down || true; exit $$rc
