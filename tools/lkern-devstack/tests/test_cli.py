"""
================================================================
FILE: test_cli.py
PATH: /tools/lkern-devstack/tests/test_cli.py
DESCRIPTION: The lkern command's help: every option of `lkern up` names its default and variable
VERSION: v1.0.0
UPDATED: 2026-12-02 03:00:00
================================================================
"""

# === IMPORTS ===
import re

from typer.testing import CliRunner

from lkern_devstack.cli import app
from lkern_devstack.stack import StackSettings

# === CONSTANTS ===
OPTIONS = (
    "data_dir",
    "contacts_http_port",
    "contacts_grpc_port",
    "orders_http_port",
    "orders_grpc_port",
    "postgres_port",
    "kafka_port",
)


# === TESTS ===
def test_up_help_shows_every_options_default_and_environment_variable() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # One line of text: the help wraps long values inside its box.
    text = re.sub(r"[\s│]+", " ", result.output)
    for field in OPTIONS:
        default = StackSettings.model_fields[field].default
        option = f"--{field.replace('_', '-')}"
        entry = re.search(rf"{option} (.*?)(?= --[a-z]|$)", text)
        assert entry is not None, f"{option} is missing:\n{result.output}"
        assert f"[env var: LKERN_{field.upper()}]" in entry.group(1)
        assert f"[default: ({default})]" in entry.group(1)
    assert "[default: (off)]" in text  # --demo
