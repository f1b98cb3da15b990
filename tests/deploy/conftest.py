"""
================================================================
FILE: conftest.py
PATH: /tests/deploy/conftest.py
DESCRIPTION: Fixtures of the deployment tests: settings, compose file, Dockerfiles, build context
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Run from the repository root: `.venv/bin/pytest -q tests/deploy`.
"""

# === IMPORTS ===
import sys
from typing import Any

import pytest
from deploy_support import (
    SCRIPTS_DIR,
    SERVICES_DIR,
    Stage,
    build_context_files,
    load_compose,
    parse_dockerfile,
)

sys.path.insert(0, str(SCRIPTS_DIR))
import gen_env_example

# === CONSTANTS ===
# The services this deployment runs, with the ports of the L-KERN port map (REST 4NNN, gRPC 5NNN).
SERVICES = {
    "lkms101-contacts": {"http": 4101, "grpc": 5101, "database": "lkms101_contacts"},
    "lkms102-orders": {"http": 4102, "grpc": 5102, "database": "lkms102_orders"},
}


# === FIXTURES ===
@pytest.fixture(scope="session")
def service_configs() -> dict[str, gen_env_example.ServiceConfig]:
    """Every service's settings, read from its code (scripts/gen_env_example.py)."""
    configs = {config.name: config for config in gen_env_example.read_services()}
    assert set(configs) == set(SERVICES), (
        f"services with app/config.py: {sorted(configs)}; tests/deploy knows {sorted(SERVICES)}"
    )
    return configs


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml, parsed."""
    return load_compose()


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, list[Stage]]:
    """Every service's Dockerfile, parsed into stages."""
    return {name: parse_dockerfile(SERVICES_DIR / name / "Dockerfile") for name in SERVICES}


@pytest.fixture(scope="session")
def build_context() -> set[str]:
    """The files the image builds see (the repository root filtered by .dockerignore)."""
    return build_context_files()
