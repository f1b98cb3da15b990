"""
================================================================
FILE: test_cli.py
PATH: /tools/lkern-devstack/tests/test_cli.py
DESCRIPTION: The lkern command's help: every option of `lkern up` names its default and variable
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import re
from typing import Any

from typer.testing import CliRunner

from lkern_devstack.cli import app
from lkern_devstack.stack import DEFAULT_SERVICE_PORTS, StackSettings

# === CONSTANTS ===
OPTIONS = ("data_dir", "postgres_port", "kafka_port")
# One REST and one gRPC option per service of the registry, with the service's own port.
SERVICE_OPTIONS = {"contacts_http_port": 4101, "orders_grpc_port": 5102, **DEFAULT_SERVICE_PORTS}


# === TESTS ===
def test_up_help_shows_every_options_default_and_environment_variable() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # One line of text: the help wraps long values inside its box.
    text = re.sub(r"[\s│]+", " ", result.output)
    defaults = {field: StackSettings.model_fields[field].default for field in OPTIONS}
    for field, default in {**defaults, **SERVICE_OPTIONS}.items():
        option = f"--{field.replace('_', '-')}"
        entry = re.search(rf"{option} (.*?)(?= --[a-z]|$)", text)
        assert entry is not None, f"{option} is missing:\n{result.output}"
        assert f"[env var: LKERN_{field.upper()}]" in entry.group(1)
        assert f"[default: ({default})]" in entry.group(1)
    assert "[default: (off)]" in text  # --demo


def test_service_ports_come_from_options_environment_or_the_registry(monkeypatch: Any) -> None:
    monkeypatch.setenv("LKERN_ORDERS_GRPC_PORT", "6102")
    settings = StackSettings.model_validate({"contacts_http_port": 6101})
    assert settings.service_port("contacts_http_port") == 6101
    assert settings.service_port("orders_grpc_port") == 6102
    assert settings.service_port("contacts_grpc_port") == 5101
