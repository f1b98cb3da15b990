"""
================================================================
FILE: test_deploy_generated.py
PATH: /tests/deploy/test_deploy_generated.py
DESCRIPTION: Generated files are current: requirements, .env.example, config docs, deploy files
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gen_env_example
import pytest
from conftest import SERVICES
from deploy_support import REPO_ROOT, SCRIPTS_DIR, SERVICES_DIR, settings_from_env

# === CONSTANTS ===
ENV_LINE = re.compile(r"^(?P<unset># )?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


# === HELPERS ===
def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / name), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def read_env_example(service: str) -> tuple[dict[str, str], dict[str, str]]:
    """(variable → value, variable → the comment line above it) of a service's .env.example."""
    values: dict[str, str] = {}
    comments: dict[str, str] = {}
    previous = ""
    path = SERVICES_DIR / service / ".env.example"
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line)
        if match:
            assert match["name"] not in values, f"{path}: {match['name']} twice"
            values[match["name"]] = match["value"]
            comments[match["name"]] = previous
        previous = line
    return values, comments


# === TESTS: UP TO DATE ===
def test_requirements_are_generated_from_the_lock_file() -> None:
    result = run_script("gen_requirements.py", "--check")
    assert result.returncode == 0, (
        f"requirements files are stale or cannot be made:\n{result.stderr}\n"
        "Regenerate: .venv/bin/python scripts/gen_requirements.py"
    )


def test_env_examples_and_configuration_doc_are_generated_from_the_settings() -> None:
    result = run_script("gen_env_example.py", "--check")
    assert result.returncode == 0, (
        f".env.example / docs/configuration.md are stale or cannot be made:\n{result.stderr}\n"
        "Regenerate: .venv/bin/python scripts/gen_env_example.py"
    )


def test_deployment_files_are_generated_from_the_registry() -> None:
    """Compose file, init-databases.sql, setup-acls.sh and .dockerignore (scripts/gen_deploy.py)."""
    result = run_script("gen_deploy.py", "--check")
    assert result.returncode == 0, (
        f"deployment files are stale or cannot be made:\n{result.stderr}\n"
        "Regenerate: make deploy-files"
    )


# === TESTS: CONTENT ===
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_env_example_lists_every_setting_with_a_comment(
    service: str, service_configs: dict[str, gen_env_example.ServiceConfig]
) -> None:
    config = service_configs[service]
    values, comments = read_env_example(service)
    assert list(values) == config.envs(), "the variables of .env.example are not the settings'"
    for setting in config.settings:
        assert values[setting.env] == setting.value, f"{setting.env}: not its default"
        assert comments[setting.env].startswith("# ") and len(comments[setting.env]) > 10, (
            f"{setting.env} has no comment line"
        )


def test_the_orders_service_documents_the_contacts_client_settings(
    service_configs: dict[str, gen_env_example.ServiceConfig],
) -> None:
    """Settings read through a second class (ContactsClientSettings, prefix CONTACTS_GRPC_)."""
    orders = service_configs["lkms102-orders"]
    assert "lkern_common.grpc_clients.contacts.ContactsClientSettings" in orders.classes
    envs = orders.envs()
    for name in ("TARGET", "TIMEOUT_SECONDS", "MAX_ATTEMPTS", "INITIAL_BACKOFF_SECONDS"):
        assert f"CONTACTS_GRPC_{name}" in envs
    assert "CONTACTS_GRPC_TARGET" not in service_configs["lkms101-contacts"].envs()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_env_example_values_load_back_to_the_defaults(service: str) -> None:
    """Every value of .env.example parses (lists, booleans, floats) to the setting's default."""
    values, _ = read_env_example(service)
    from_file = settings_from_env(service, values)
    defaults = settings_from_env(service, {})
    assert from_file == defaults


def test_configuration_doc_has_every_variable_and_default(
    service_configs: dict[str, gen_env_example.ServiceConfig],
) -> None:
    text = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for config in service_configs.values():
        for setting in config.settings:
            rows = [line for line in text.splitlines() if line.startswith(f"| `{setting.env}` |")]
            assert len(rows) == 1, f"{setting.env}: {len(rows)} rows in docs/configuration.md"
            if setting.value:
                assert f"`{setting.value}`" in rows[0]


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    """--check fails, naming the file, when a generated file differs from the settings."""
    # The real script on a scratch tree (scripts/, docs/, services/*/app linked), so that the
    # checkout is never written to.
    scratch = tmp_path / "repo"
    (scratch / "scripts").mkdir(parents=True)
    (scratch / "docs").mkdir()
    shutil.copy2(SCRIPTS_DIR / "gen_env_example.py", scratch / "scripts" / "gen_env_example.py")
    for service in SERVICES:
        (scratch / "services" / service).mkdir(parents=True)
        (scratch / "services" / service / "app").symlink_to(SERVICES_DIR / service / "app")
    script = [sys.executable, str(scratch / "scripts" / "gen_env_example.py")]

    written = subprocess.run(script, cwd=scratch, capture_output=True, text=True, check=False)
    assert written.returncode == 0, written.stderr
    env_example = scratch / "services" / "lkms101-contacts" / ".env.example"
    assert env_example.read_text(encoding="utf-8") == (
        SERVICES_DIR / "lkms101-contacts" / ".env.example"
    ).read_text(encoding="utf-8")
    current = subprocess.run([*script, "--check"], cwd=scratch, capture_output=True, check=False)
    assert current.returncode == 0

    text = env_example.read_text(encoding="utf-8")
    env_example.write_text(text.replace("HTTP_PORT=4101", "HTTP_PORT=4999"), encoding="utf-8")
    stale = subprocess.run(
        [*script, "--check"], cwd=scratch, capture_output=True, text=True, check=False
    )
    assert stale.returncode == 1
    assert "services/lkms101-contacts/.env.example" in stale.stderr
