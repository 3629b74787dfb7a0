# deployer — common tasks. Run `make help` for the list.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# The Kubernetes server binaries for the lab: a directory or a .tar.xz/.tar.gz of
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (+ pause).
DEPLOYER_LAB_BINARIES ?= $(firstword $(wildcard ../shared/lab/kube-*-linux-amd64.tar.xz))
export DEPLOYER_LAB_BINARIES

.PHONY: help install lab-deps lab-up lab-down lab-status demo-app demo test test-unit test-package test-e2e lint bench cluster cluster-down clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev,stats]'
	$(VPY) -m pip install -q -e tests/plugins/shadow  # the example strategy plugin the tests run
	touch $@

install: $(VENV)/.installed ## create .venv and install deployer with its dev extra

lab-deps: ## install the lab's Debian packages (root)
	lab/deps

lab-up: ## start the local lab cluster (idempotent; root, Linux, no Docker)
	lab/up

lab-down: ## stop the lab and clean everything it left
	lab/down

lab-status: ## components, node and images of the lab
	lab/status

demo-app: ## deploy the hello demo app (v1) to the lab
	lab/run kubectl apply -f manifests/hello/
	lab/run kubectl rollout status deployment/hello --timeout=120s

demo: install lab-up demo-app ## the main job: lab up, hello v1, then a canary to v2
	lab/run $(VENV)/bin/deployer --context deployer-lab canary --app hello --image v2

# The modules that decide promote-or-roll-back: each must be covered by the unit tests.
COVERAGE_GATED := deployer/engine/engine.py deployer/engine/context.py \
	deployer/engine/deployments.py deployer/engine/services.py deployer/engine/traffic.py \
	deployer/engine/holds.py deployer/engine/outage.py deployer/health/verifier.py \
	deployer/preflight.py deployer/record.py
COVERAGE_MIN := 85

# End-to-end tests run in two phases (tests/e2e/run): the tests not marked serial on
# E2E_WORKERS pytest-xdist workers, then the serial ones alone. E2E_ARGS go to both.
E2E_WORKERS ?= 4
E2E_ARGS ?= --durations=25  # the slowest tests, in every CI log: where the suite's time goes
E2E := E2E_WORKERS=$(E2E_WORKERS) E2E_PYTEST=$(VENV)/bin/pytest lab/run tests/e2e/run $(E2E_ARGS)

test: test-unit test-package lab-up ## all tests: unit (with coverage), the package, then end-to-end on the lab
	$(E2E)

test-package: install ## the sdist and wheel built, the wheel installed alone and run (needs PyPI)
	$(VENV)/bin/pytest -q --timeout 900 tests/package

test-unit: install ## unit tests only (no cluster), with line coverage per module
	$(VENV)/bin/coverage run -m pytest --timeout 60 tests/unit  # no unit test waits for real
	$(VENV)/bin/coverage report --include='deployer/*,strategies/*' --skip-covered --sort=cover
	@fail=0; for m in $(COVERAGE_GATED); do \
	  $(VENV)/bin/coverage report --include=$$m --fail-under=$(COVERAGE_MIN) >/dev/null || \
	  { echo "coverage below $(COVERAGE_MIN)%: $$m"; fail=1; }; done; \
	[ $$fail = 0 ] && echo "coverage: each of the $(words $(COVERAGE_GATED)) gated modules >= $(COVERAGE_MIN)%"; \
	exit $$fail

test-e2e: install lab-up ## end-to-end tests on the lab cluster (parallel, then serial)
	$(E2E)

lint: install ## ruff, mypy and the import contracts
	$(VENV)/bin/ruff check deployer strategies tests lab bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install lab-up ## benchmarks (print figures)
	$(VPY) bench/run.py --install
	lab/run $(VPY) bench/run.py

cluster: ## a kind cluster instead of the lab (needs Docker and kind)
	kind create cluster --config kind-config.yaml
	$(PYTHON) lab/images.py build/images
	for image in build/images/hello-*.tar; do kind load image-archive "$$image" --name deployer; done
	kubectl apply -f manifests/hello/ -f manifests/kind/
	kubectl rollout status deployment/hello --timeout=120s

cluster-down: ## delete the kind cluster
	kind delete cluster --name deployer

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
