"""
================================================================
FILE: conftest.py
PATH: /tests/deploy/conftest.py
DESCRIPTION: Fixtures of the deployment tests: settings, compose file, Dockerfiles, build context
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================

Run from the repository root: `.venv/bin/pytest -q tests/deploy`.
"""

# === IMPORTS ===
import sys
from typing import Any

import pytest
from deploy_support import (
    DOCKERFILE,
    REPO_ROOT,
    SCRIPTS_DIR,
    Stage,
    build_context_files,
    image_build_args,
    load_compose,
    parse_dockerfile,
)

from lkern_common.registry import ServiceEntry, discover_services

sys.path.insert(0, str(SCRIPTS_DIR))
import gen_env_example

# === CONSTANTS ===
# The services this deployment runs (the registry: services/*/pyproject.toml [tool.lkern]), with
# the ports of the L-KERN port map (REST 4NNN, gRPC 5NNN) and their databases.
ENTRIES: dict[str, ServiceEntry] = {entry.name: entry for entry in discover_services(REPO_ROOT)}
SERVICES = {
    name: {"http": entry.http_port, "grpc": entry.grpc_port, "database": entry.database}
    for name, entry in ENTRIES.items()
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
def dockerfiles(compose: dict[str, Any]) -> dict[str, list[Stage]]:
    """deploy/Dockerfile as each service's image is built (its compose build arguments)."""
    return {
        name: parse_dockerfile(DOCKERFILE, image_build_args(compose, name)) for name in SERVICES
    }


@pytest.fixture(scope="session")
def build_context() -> set[str]:
    """The files the image builds see (the repository root filtered by .dockerignore)."""
    return build_context_files()
