"""
================================================================
FILE: conftest.py
PATH: /tests/images/conftest.py
DESCRIPTION: Fixtures of the image tests: podman, both images built, database, broker, compose file
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================

Run with `make test-images` (docs/deploy.md): it needs podman, debootstrap and runc, as root.
A missing tool fails the run with the command that installs it; nothing is skipped.
"""

# === IMPORTS ===
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from images_support import REPO_ROOT, Podman, build_image, ensure_base_image, find_podman

from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.testing import TestDatabase

# The compose file and Dockerfile readers of the deployment tests (one place for both suites).
sys.path.insert(0, str(REPO_ROOT / "tests" / "deploy"))
from deploy_support import SERVICES_DIR, image_build_args, load_compose

# === CONSTANTS ===
# The services run together by test_images (in the compose file's start order); every service
# of the compose file (the registry's) gets its image built.
SERVICES = ["lkms101-contacts", "lkms102-orders"]
BASE_REPORT = pytest.StashKey[str]()


# === FIXTURES ===
@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    """podman with the tests' containers.conf; fails (never skips) when a tool is missing."""
    try:
        return Podman(find_podman(), tmp_path_factory.mktemp("podman"))
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def images(
    podman: Podman, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict[str, str]:
    """Every service's image, built from deploy/Dockerfile on the (stand-in) base: tags."""
    try:
        pytestconfig.stash[BASE_REPORT] = ensure_base_image(podman, tmp_path_factory.mktemp("base"))
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    compose = load_compose()
    built = [name for name in compose["services"] if compose["services"][name].get("build")]
    return {
        service: build_image(podman, service, image_build_args(compose, service))
        for service in built
        if not service.endswith("-migrate")
    }


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml, parsed."""
    return load_compose()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(port=free_port(), log_file=log) as running:
        yield running


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    """An empty database per service (the migrate jobs create the tables)."""
    created = {service: TestDatabase(SERVICES_DIR / service, "images") for service in SERVICES}
    urls = {service: database.create(migrate=False) for service, database in created.items()}
    yield urls
    for database in created.values():
        database.drop()


# === REPORT ===
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Which base image the images were built on (the stand-in proves less than the real one)."""
    if BASE_REPORT in config.stash:
        terminalreporter.write_line(f"base image: {config.stash[BASE_REPORT]}")
