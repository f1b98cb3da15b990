# ================================================================
# L-KERN v4 backend — one command per task
#   make up      run the whole local stack (creates the environment first)
#   make test    lint, type-check and run every test (creates the environment first)
# ================================================================

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
# Every service folder (each declares itself in its pyproject.toml [tool.lkern]; lkern_common.registry
# reads the same folders): a new service (lkern new-service) needs no edit here.
SERVICES := $(patsubst %/pyproject.toml,%,$(sort $(wildcard services/*/pyproject.toml)))
PACKAGES := libs/lkern-common tools/lkern-devstack
PYTEST := $(abspath $(BIN))/pytest
MYPY := $(abspath $(BIN))/mypy --config-file $(abspath pyproject.toml)

.PHONY: help venv up test test-faults test-images lint format typecheck unit grpc-gen requirements config-docs event-schemas deploy-files generate images bench clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 22

# === ENVIRONMENT ===
venv: $(VENV)/.synced  ## create/update .venv from uv.lock

$(VENV)/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml tools/*/pyproject.toml services/*/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --all-packages
	@# pip installed uv itself, so uv's cache has no index entry for it; an offline `uv lock`
	@# (lkern new-service, in the tests) needs one: fetch it while there is a network.
	$(BIN)/uv lock --dry-run --refresh-package uv
	@touch $@

# === RUN ===
up: venv  ## run the whole stack (DEMO=1 loads demo data once); Ctrl-C stops it
	$(BIN)/lkern up $(if $(DEMO),--demo,)

# === CHECKS ===
lint: venv  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv  ## ruff fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv  ## mypy --strict on the library, tools, scripts and each service's app
	$(MYPY) libs/lkern-common/src tools/lkern-devstack/src scripts deploy/healthcheck.py bench
	@for service in $(SERVICES); do \
		if [ -d $$service/app ]; then (cd $$service && $(MYPY) app) || exit 1; fi; \
	done

unit: venv  ## every test suite, on one throw-away PostgreSQL (or TEST_POSTGRES_URL)
	$(BIN)/lkern with-test-postgres -- $(MAKE) --no-print-directory suites

# The suites one after the other (library, devstack, services, deployment files, end to end,
# faults);
# `make unit` runs them with TEST_POSTGRES_URL set (see README, "Tests and PostgreSQL").
# They need no network: uv, where a test runs it, uses only its cache (filled by `make venv`).
.PHONY: suites
suites: export UV_OFFLINE = 1
# grpcio's fork handlers can abort a child forked (to exec a server) while gRPC threads run.
suites: export GRPC_ENABLE_FORK_SUPPORT = false
suites: venv
	@for dir in $(PACKAGES) $(SERVICES); do \
		if [ -d $$dir/tests ]; then \
			echo "=== tests: $$dir ==="; \
			(cd $$dir && $(PYTEST) -q -p no:cacheprovider tests) || exit 1; \
		fi; \
	done
	@echo "=== tests: deployment files ==="
	$(PYTEST) -q -p no:cacheprovider tests/deploy
	@echo "=== tests: end to end (lkern up, both services, browser) ==="
	$(PYTEST) -q -p no:cacheprovider tests/e2e
	@echo "=== tests: faults (broker paused, processes killed, ...; docs/reliability.md) ==="
	$(PYTEST) -q -p no:cacheprovider tests/faults

test: lint typecheck unit  ## lint, typecheck and every test

# Faults injected into the real stack (pauses, kills, stops), counted with the databases as the
# truth; prints the figures docs/reliability.md quotes. `make test` runs it last; this runs it alone.
test-faults: venv  ## only the fault suite, on its own stack (broker paused, processes killed, ...)
	UV_OFFLINE=1 GRPC_ENABLE_FORK_SUPPORT=false $(PYTEST) -q -p no:cacheprovider tests/faults

# Builds every service's image with podman on a stand-in python:3.11-slim (docs/deploy.md), runs them.
test-images: venv  ## build every image with podman and run them hardened (root; podman, runc, debootstrap)
	@for tool in podman runc; do \
		command -v $$tool >/dev/null || { echo "make test-images needs $$tool:" \
			"apt-get update && apt-get install -y podman debootstrap runc" >&2; exit 1; }; \
	done
	$(PYTEST) -q -p no:cacheprovider tests/images

# === BENCHMARK ===
bench: venv  ## benchmark suite on its own stack, ~7 min (not part of test; BENCH_ARGS="--seconds 3")
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# === CODE GENERATION ===
grpc-gen: venv  ## regenerate gRPC code from the services' proto files
	$(BIN)/python scripts/gen_grpc.py

requirements: venv  ## services/*/requirements.txt from uv.lock
	$(BIN)/python scripts/gen_requirements.py

config-docs: venv  ## services/*/.env.example and docs/configuration.md from the Settings classes
	$(BIN)/python scripts/gen_env_example.py

event-schemas: venv  ## the committed JSON Schema of each event (lkern_common/contracts/schemas)
	$(BIN)/python scripts/gen_event_schemas.py

deploy-files: venv  ## compose file, init-databases.sql, setup-acls.sh, .dockerignore from the registry
	$(BIN)/python scripts/gen_deploy.py

generate: grpc-gen requirements config-docs event-schemas deploy-files  ## every generated file

# The service and its ports are the build arguments of the one Dockerfile (from the registry).
images: venv  ## build every service's image from deploy/Dockerfile (needs a Docker engine)
	@$(BIN)/python -c 'from pathlib import Path; from lkern_common.registry import discover_services; \
		print("\n".join(f"{e.name} {e.http_port} {e.grpc_port}" for e in discover_services(Path("."))))' | \
	while read name http grpc; do \
		docker build -f deploy/Dockerfile --build-arg SERVICE=$$name --build-arg HTTP_PORT=$$http \
			--build-arg GRPC_PORT=$$grpc -t lkern/$$name:local . || exit 1; \
	done

clean:  ## remove .venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache
