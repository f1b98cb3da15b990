# ================================================================
# L-KERN v4 backend — one command per task
#   make up      run the whole local stack (creates the environment first)
#   make test    lint, type-check and run every test (creates the environment first)
# ================================================================

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
SERVICES := services/lkms101-contacts services/lkms102-orders
PACKAGES := libs/lkern-common tools/lkern-devstack
PYTEST := $(abspath $(BIN))/pytest
MYPY := $(abspath $(BIN))/mypy --config-file $(abspath pyproject.toml)

.PHONY: help venv up test lint format typecheck unit grpc-gen requirements config-docs images bench clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

# === ENVIRONMENT ===
venv: $(VENV)/.synced

$(VENV)/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml tools/*/pyproject.toml services/*/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --all-packages
	@touch $@

# === RUN ===
up: venv
	$(BIN)/lkern up $(if $(DEMO),--demo,)

# === CHECKS ===
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(MYPY) libs/lkern-common/src tools/lkern-devstack/src scripts deploy/healthcheck.py
	@for service in $(SERVICES); do \
		if [ -d $$service/app ]; then (cd $$service && $(MYPY) app) || exit 1; fi; \
	done

unit: venv
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

test: lint typecheck unit

# === CODE GENERATION ===
grpc-gen: venv
	$(BIN)/python scripts/gen_grpc.py

requirements: venv  ## services/*/requirements.txt from uv.lock
	$(BIN)/python scripts/gen_requirements.py

config-docs: venv  ## services/*/.env.example and docs/configuration.md from the Settings classes
	$(BIN)/python scripts/gen_env_example.py

images:  ## needs a Docker engine
	docker build -f services/lkms101-contacts/Dockerfile -t lkern/lkms101-contacts:local .
	docker build -f services/lkms102-orders/Dockerfile -t lkern/lkms102-orders:local .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
