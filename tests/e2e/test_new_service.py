"""
================================================================
FILE: test_new_service.py
PATH: /tests/e2e/test_new_service.py
DESCRIPTION: End-to-end: `lkern new-service` in a copy of the repository; its tests and `lkern up`
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

The promise of `lkern new-service lkms1NN-<name>`: with no other edit the new service's own
tests pass, `lkern up` (`make up`) starts it with the others until every /ready answers, the
compose file runs it and `make test` runs its tests. The command runs in a copy of the
repository (this checkout is never written to), with that copy's own code.
"""

# === IMPORTS ===
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from lkern_devstack.postgres import EmbeddedPostgres
from tests.e2e.conftest import (
    PYTHON,
    _stack_environment,
    start_stack,
    stop_stack,
    wait_until_ready,
)
from tests.e2e.test_private_folder import copy_of_repository, servers_of

# === CONSTANTS ===
NAME = "lkms109-sample"
SHORT = "sample"
COMMAND_TIMEOUT_S = 600


# === FIXTURES ===
@pytest.fixture(scope="module")
def checkout() -> Iterator[Path]:
    """A copy of the repository with the new service made in it by `lkern new-service`."""
    folder = Path(tempfile.mkdtemp(prefix="lkern-new-service-"))
    folder.chmod(0o755)
    copy = folder / "l-kern"
    copy_of_repository(copy)
    relocated = EmbeddedPostgres(copy / ".lkern" / "postgres").relocated_base()
    try:
        made = subprocess.run(
            [str(PYTHON), "-m", "lkern_devstack.cli", "new-service", NAME],
            cwd=copy,
            env=_stack_environment(copy),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        yield copy
    finally:
        for leftover in servers_of(relocated):
            leftover.kill()
        shutil.rmtree(relocated, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


# === TESTS ===
def test_the_new_service_is_complete_and_its_tests_pass(checkout: Path) -> None:
    service = checkout / "services" / NAME
    for path in (
        "pyproject.toml",
        "requirements.txt",
        ".env.example",
        "app/spec.py",
        f"app/grpc/{SHORT}_pb2_grpc.py",
        f"proto/{SHORT}.proto",
        "tests/test_api.py",
        "tests/test_grpc.py",
        "tests/test_services.py",
        "tests/test_migrations.py",
        "tests/conftest.py",
    ):
        assert (service / path).is_file(), path
    assert len(list((service / "alembic" / "versions").glob("*_0001_create_items.py"))) == 1
    tests = subprocess.run(
        [str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=service,
        env={**_stack_environment(checkout), "UV_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]


def test_the_new_service_passes_lint_and_strict_typing(checkout: Path) -> None:
    """What `make lint typecheck` runs on it: ruff check, ruff format --check, mypy --strict."""
    service = checkout / "services" / NAME
    tools = PYTHON.parent
    for command in (
        [str(tools / "ruff"), "check", str(service)],
        [str(tools / "ruff"), "format", "--check", str(service)],
        [str(tools / "mypy"), "--config-file", str(checkout / "pyproject.toml"), "app"],
    ):
        result = subprocess.run(
            command,
            cwd=service,
            env=_stack_environment(checkout),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, f"{command[0]}: {result.stdout}{result.stderr}"


def test_compose_make_and_the_generated_files_include_it(checkout: Path) -> None:
    compose = yaml.safe_load((checkout / "deploy/docker-compose.yml").read_text())
    assert {NAME, f"{NAME}-migrate"} <= set(compose["services"])
    assert compose["services"][NAME]["ports"] == ["127.0.0.1:4109:4109", "127.0.0.1:5109:5109"]
    assert (
        "CREATE DATABASE lkms109_sample;"
        in (checkout / "deploy/postgres/init-databases.sql").read_text()
    )
    make = subprocess.run(
        ["make", "--no-print-directory", "-n", "suites"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert f"services/{NAME}" in make.stdout, make.stdout + make.stderr
    # The new files are formatted and current: a second run of each generator changes nothing.
    for script in ("gen_deploy.py", "gen_grpc.py", "gen_env_example.py"):
        check = subprocess.run(
            [str(PYTHON), f"scripts/{script}", "--check"],
            cwd=checkout,
            env=_stack_environment(checkout),
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, f"{script}: {check.stderr}"


def test_lkern_up_starts_it_with_the_others(checkout: Path) -> None:
    stack = start_stack(checkout=checkout)
    try:
        wait_until_ready(stack)  # contacts, orders, and the table printed after every service
        ready = httpx.get(f"{stack.url(SHORT)}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        token = stack.token(scopes=[f"{SHORT}:write", f"{SHORT}:read"])
        created = httpx.post(
            f"{stack.url(SHORT)}/api/v1/{SHORT}/",
            json={"name": "made by lkern new-service"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
    finally:
        stop_stack(stack)
