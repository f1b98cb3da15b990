"""
================================================================
FILE: gen_env_example.py
PATH: /scripts/gen_env_example.py
DESCRIPTION: Generate (or --check) each service's .env.example and docs/configuration.md
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Usage (from the repository root):
    .venv/bin/python scripts/gen_env_example.py            # (re)write the files
    .venv/bin/python scripts/gen_env_example.py --check    # exit 1 if one is out of date

The files are made from the settings classes themselves, so they cannot drift from the code:
for every service (`services/*/app/config.py`) the script imports the service's `app` package
in a child process run from the service folder (each service has its own top-level `app`
package, so two services cannot be imported in one process), collects every pydantic-settings
class the service's modules use (its `app.config.Settings`, which extends
`lkern_common.settings.ServiceSettings`, and e.g. `ContactsClientSettings` in the orders
service), and reads each field's environment variable name, default, allowed values, bounds
and description.

Every setting needs a one-line description: `Field(description=...)` on the field (preferred),
or an entry in FALLBACK_DESCRIPTIONS below for the older fields that have none yet. The script
fails, naming the field, when a setting has neither, and when a fallback entry is no longer used.

Outputs:
    services/<service>/.env.example   every variable the service reads, with its default
    docs/configuration.md             one table of all variables and each service's default
"""

# === IMPORTS ===
from __future__ import annotations

import argparse
import enum
import importlib
import json
import logging
import os
import pkgutil
import subprocess
import sys
import tempfile
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# === LOGGING ===
logger = logging.getLogger("gen_env_example")

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / "services"
CONFIGURATION_DOC = REPO_ROOT / "docs" / "configuration.md"
ENV_EXAMPLE_NAME = ".env.example"
REGENERATE = ".venv/bin/python scripts/gen_env_example.py"

# One-line descriptions of the settings declared without `Field(description=...)`, by variable.
# Prefer adding the description to the field; then delete its entry here (an unused entry fails).
FALLBACK_DESCRIPTIONS: dict[str, str] = {
    # --- identity (lkern_common.settings.ServiceSettings) ---
    "SERVICE_NAME": "Service name: in logs, /health, / and as the default Kafka client id",
    "SERVICE_VERSION": "Version reported by /health and /",
    "ENVIRONMENT": "Where the service runs (information for logs and operators)",
    # --- logging ---
    "LOG_LEVEL": "Log level of the service's loggers",
    # --- HTTP ---
    "HTTP_HOST": "Address the REST API listens on (0.0.0.0: every interface)",
    "HTTP_PORT": "Port of the REST API (lkmsNNN serves REST on 4NNN)",
    "CORS_ORIGINS": "Browser origins allowed to call the REST API, comma-separated",
    "CORS_ALLOW_CREDENTIALS": "Allow cookies/authorization headers in CORS requests "
    "(refused together with CORS_ORIGINS=*)",
    # --- gRPC ---
    "GRPC_HOST": "Address the gRPC server listens on (0.0.0.0: every interface)",
    "GRPC_PORT": "Port of the gRPC server (lkmsNNN serves gRPC on 5NNN)",
    "GRPC_GRACE_SECONDS": "At shutdown, how long running gRPC calls may finish",
    # --- database ---
    "DATABASE_URL": "PostgreSQL URL of the service's own database (postgresql:// is turned "
    "into postgresql+asyncpg://)",
    "DB_POOL_SIZE": "Database connections kept open per process",
    "DB_MAX_OVERFLOW": "Extra connections opened above DB_POOL_SIZE under load",
    "DB_POOL_PRE_PING": "Test each connection before use (one extra round trip per checkout)",
    "DB_POOL_RECYCLE_SECONDS": "Replace pooled connections older than this",
    "DB_ECHO": "Log every SQL statement (debugging only)",
    # --- Kafka ---
    "KAFKA_BOOTSTRAP_SERVERS": "Kafka brokers to connect to, host:port, comma-separated",
    "KAFKA_CLIENT_ID": "Client id sent to Kafka (empty: the service name)",
    "KAFKA_ENABLE_IDEMPOTENCE": "Idempotent producer: true for Apache Kafka; false for the "
    "local broker (Tansu), which does not support it",
    "KAFKA_TOPIC_PARTITIONS": "Partitions of the topics the service creates",
    "KAFKA_TOPIC_REPLICATION_FACTOR": "Replicas of the topics the service creates (at most "
    "the number of brokers)",
    # --- Kafka consumer ---
    "KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "A consumer that sends no heartbeat for this long "
    "leaves the group",
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS": "How often the consumer sends heartbeats (about a "
    "third of the session timeout)",
    "KAFKA_FETCH_MAX_WAIT_MS": "Longest wait of a fetch for new data (short for the local "
    "broker, which does not wake waiting fetches)",
    "KAFKA_CONSUMER_MAX_ATTEMPTS": "Attempts of a failing event handler before its message "
    "goes to the dead-letter topic",
    "KAFKA_CONSUMER_RETRY_BACKOFF_MS": "First wait between handler attempts (doubles each time)",
    "KAFKA_CONSUMER_RETRY_BACKOFF_MAX_MS": "Longest wait between handler attempts",
    "KAFKA_INBOX_RETENTION_DAYS": "Inbox rows (ids of applied events) older than this are "
    "deleted; 0 keeps them forever",
    # --- orders service (services/lkms102-orders/app/config.py) ---
    "CONTACTS_GRPC_TARGET": "host:port of the contacts service's gRPC server",
    "CONTACTS_GRPC_MAX_ATTEMPTS": "Attempts of a contacts call that fails with UNAVAILABLE "
    "(1: no retry)",
    "KAFKA_CONSUMER_GROUP_ID": "Kafka consumer group of the contact events consumer",
    "KAFKA_DLQ_TOPIC": "Dead-letter topic for contact events that cannot be applied",
    # --- contacts gRPC client (lkern_common.grpc_clients.contacts.ContactsClientSettings) ---
    "CONTACTS_GRPC_INITIAL_BACKOFF_SECONDS": "First wait before a contacts call is retried",
    "CONTACTS_GRPC_MAX_BACKOFF_SECONDS": "Longest wait between retries of a contacts call",
    "CONTACTS_GRPC_BACKOFF_MULTIPLIER": "Factor by which the wait between retries grows",
}


# === TYPES ===
@dataclass
class Setting:
    """One environment variable a service reads."""

    env: str
    value: str  # the default as it is written in .env.example ("" for an empty string)
    unset: bool  # no default value (None or required): the line is commented out
    description: str
    section: str  # title of the settings class that declares the field
    allowed: list[str] = field(default_factory=list)
    bounds: list[str] = field(default_factory=list)

    def comment(self) -> str:
        """The one-line comment above the variable in .env.example."""
        text = self.description.rstrip(".")
        if self.allowed:
            text += f"; one of: {', '.join(self.allowed)}"
        if self.bounds:
            text += f"; {', '.join(self.bounds)}"
        if self.unset:
            text += "; not set by default"
        return text


@dataclass
class ServiceConfig:
    """The settings of one service, as read from its code."""

    name: str
    folder: Path
    classes: list[str]
    settings: list[Setting]

    def envs(self) -> list[str]:
        """The variable names, in file order."""
        return [setting.env for setting in self.settings]


class GenerationError(Exception):
    """A service's settings cannot be documented (missing description, unsupported type)."""


# === INTROSPECTION (runs in a child process, in a service folder) ===
def _section_title(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    first = doc[0].strip() if doc else cls.__name__
    for separator in ("; ", ". "):
        first = first.split(separator, 1)[0]
    return f"{first.rstrip('.')} ({cls.__module__}.{cls.__qualname__})"


def _declaring_class(cls: type, name: str) -> type:
    """The most basic class in ``cls``'s MRO that declares the field ``name``."""
    for klass in reversed(cls.__mro__):
        if name in vars(klass).get("__annotations__", {}):
            return klass
    return cls


def _env_name(cls: Any, name: str, info: Any) -> str:
    from pydantic import AliasChoices

    config = cls.model_config
    if config.get("env_nested_delimiter"):
        raise GenerationError(f"{cls.__qualname__}: nested settings are not supported")
    alias = info.validation_alias or info.alias
    if isinstance(alias, AliasChoices):
        alias = next((choice for choice in alias.choices if isinstance(choice, str)), None)
    env = alias if isinstance(alias, str) else f"{config.get('env_prefix', '')}{name}"
    return env if config.get("case_sensitive") else env.upper()


def _render_value(value: Any, info: Any) -> str:
    from pydantic_settings import NoDecode

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        if any(marker is NoDecode for marker in info.metadata):
            return ",".join(str(item) for item in value)
        return json.dumps(list(value))
    if isinstance(value, dict):
        return json.dumps(value, default=str)  # paths as text
    text = str(value)
    if "\n" in text or text != text.strip():
        raise GenerationError(f"default {text!r} cannot be written on one .env line")
    return text


def _allowed(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(arg) for arg in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def _bounds(info: Any) -> list[str]:
    bounds = []
    for marker in info.metadata:
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            limit = getattr(marker, attribute, None)
            if limit is not None:
                bounds.append(f"{symbol} {limit}")
    return bounds


def _settings_classes() -> list[type]:
    """Every settings class the service's `app` modules define or import (most derived only)."""
    from pydantic_settings import BaseSettings

    config_module = importlib.import_module("app.config")
    package = importlib.import_module("app")
    modules = [config_module]
    for module_info in pkgutil.walk_packages(package.__path__, "app."):
        modules.append(importlib.import_module(module_info.name))
    found: dict[str, type] = {}
    for module in modules:
        for value in vars(module).values():
            is_settings = isinstance(value, type) and issubclass(value, BaseSettings)
            if is_settings and value is not BaseSettings:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    settings_cls = getattr(config_module, "Settings", None)
    if settings_cls is None:
        raise GenerationError("app/config.py has no Settings class")
    leaves = [
        cls
        for cls in found.values()
        if not any(other is not cls and issubclass(other, cls) for other in found.values())
    ]
    # The service's own Settings first: its defaults win for a variable read by two classes.
    return sorted(leaves, key=lambda cls: (cls is not settings_cls, cls.__module__, cls.__name__))


def introspect_service() -> dict[str, Any]:
    """Read the settings of the service whose folder is the current directory."""
    from pydantic_core import PydanticUndefined

    sys.path.insert(0, os.getcwd())
    classes = _settings_classes()
    settings: dict[str, Setting] = {}
    for cls in classes:
        for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
            env = _env_name(cls, name, info)
            if env in settings:
                continue
            default = info.get_default(call_default_factory=True)
            unset = default is PydanticUndefined or default is None
            description = (info.description or "").strip()
            if not description:
                description = FALLBACK_DESCRIPTIONS.get(env, "")
            settings[env] = Setting(
                env=env,
                value="" if unset else _render_value(default, info),
                unset=unset,
                description=description,
                section=_section_title(_declaring_class(cls, name)),
                allowed=_allowed(info.annotation),
                bounds=_bounds(info),
            )
    return {
        "classes": [f"{cls.__module__}.{cls.__qualname__}" for cls in classes],
        "settings": [asdict(setting) for setting in settings.values()],
    }


# === READING THE SERVICES ===
def service_folders() -> list[Path]:
    """Every service that has settings (services/*/app/config.py), by name."""
    return sorted(path.parent.parent for path in SERVICES_DIR.glob("*/app/config.py"))


def read_service(folder: Path) -> ServiceConfig:
    """The settings of the service in ``folder``, read by a child process run in that folder."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "settings.json"
        # A clean environment: nothing the caller exported can leak into what is read.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--introspect", str(output)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise GenerationError(
                f"reading the settings of {folder.name} failed:\n{result.stderr.strip()}"
            )
        data = json.loads(output.read_text(encoding="utf-8"))
    return ServiceConfig(
        name=folder.name,
        folder=folder,
        classes=data["classes"],
        settings=[Setting(**item) for item in data["settings"]],
    )


def read_services() -> list[ServiceConfig]:
    """The settings of every service."""
    return [read_service(folder) for folder in service_folders()]


def validate(services: list[ServiceConfig]) -> None:
    """Every setting has a description; every fallback description is still needed."""
    problems = []
    for service in services:
        for setting in service.settings:
            if not setting.description:
                problems.append(
                    f"{service.name}: {setting.env} has no description: add "
                    f"Field(description=...) to its field (or an entry to "
                    f"FALLBACK_DESCRIPTIONS in scripts/gen_env_example.py)"
                )
    used = {setting.env for service in services for setting in service.settings}
    for env in FALLBACK_DESCRIPTIONS:
        if env not in used:
            problems.append(f"FALLBACK_DESCRIPTIONS[{env!r}] is not read by any service: delete it")
    if problems:
        raise GenerationError("\n".join(problems))


# === RENDERING ===
def render_env_example(service: ServiceConfig) -> str:
    """The text of ``services/<name>/.env.example``."""
    lines = [
        "# ================================================================",
        f"# FILE: {ENV_EXAMPLE_NAME}",
        f"# PATH: /services/{service.name}/{ENV_EXAMPLE_NAME}",
        f"# DESCRIPTION: Every setting of {service.name} with its default",
        "# ================================================================",
        f"# Generated by scripts/gen_env_example.py from {', '.join(service.classes)}:",
        f"# do not edit by hand; regenerate with: {REGENERATE}",
        "#",
        "# Every line is an environment variable (names are case-insensitive). The service also",
        "# reads a .env file in its folder: copy this file to .env and change what you need.",
        "# The defaults suit the local stack (make up); docs/deploy.md says what production sets.",
    ]
    section = None
    for setting in service.settings:
        if setting.section != section:
            section = setting.section
            lines += ["", f"# === {section} ==="]
        lines.append(f"# {setting.comment()}")
        lines.append(f"{'# ' if setting.unset else ''}{setting.env}={setting.value}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_configuration_doc(services: list[ServiceConfig]) -> str:
    """The text of docs/configuration.md: one table per settings class, all services' defaults."""
    by_env: dict[str, dict[str, Setting]] = {}
    sections: dict[str, list[str]] = {}
    for service in services:
        for setting in service.settings:
            if setting.env not in by_env:
                by_env[setting.env] = {}
                sections.setdefault(setting.section, []).append(setting.env)
            by_env[setting.env][service.name] = setting
    names = [service.name for service in services]
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by scripts/gen_env_example.py from the services' settings classes: do",
        f"     not edit by hand; regenerate with: {REGENERATE} -->",
        "",
        "Every setting is an environment variable (names are case-insensitive); a service also",
        "reads a `.env` file in its own folder. Each service's `.env.example` lists the variables",
        "it reads with their defaults. The defaults suit the local stack (`make up`): what a",
        "deployment sets instead is in [deploy.md](deploy.md) and `deploy/docker-compose.yml`.",
        "A cell with — means that the service does not read the variable.",
    ]
    header = "| Variable | " + " | ".join(f"{name} default" for name in names) + " | Meaning |"
    rule = "|---|" + "---|" * len(names) + "---|"
    for section, envs in sections.items():
        lines += ["", f"## {section}", "", header, rule]
        for env in envs:
            per_service = by_env[env]
            cells = []
            for name in names:
                found = per_service.get(name)
                if found is None:
                    cells.append("—")
                elif found.unset:
                    cells.append("(not set)")
                elif found.value == "":
                    cells.append("(empty)")
                else:
                    cells.append(f"`{_cell(found.value)}`")
            first = next(iter(per_service.values()))
            lines.append(f"| `{env}` | {' | '.join(cells)} | {_cell(first.comment())} |")
    return "\n".join(lines) + "\n"


def outputs(services: list[ServiceConfig]) -> dict[Path, str]:
    """Every generated file and its content."""
    files = {service.folder / ENV_EXAMPLE_NAME: render_env_example(service) for service in services}
    files[CONFIGURATION_DOC] = render_configuration_doc(services)
    return files


# === MAIN ===
def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report those that are out of date (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--introspect", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.introspect:
        data = introspect_service()
        Path(args.introspect).write_text(json.dumps(data), encoding="utf-8")
        return 0

    try:
        services = read_services()
        validate(services)
    except GenerationError as exc:
        logger.error("%s", exc)
        return 2
    stale = []
    for path, content in outputs(services).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        relative = path.relative_to(REPO_ROOT)
        if args.check:
            stale.append(str(relative))
        else:
            path.write_text(content, encoding="utf-8")
            logger.info("wrote %s", relative)
    if stale:
        logger.error("out of date: %s; regenerate with: %s", ", ".join(stale), REGENERATE)
        return 1
    if not args.check:
        logger.info("settings documented for %s", ", ".join(s.name for s in services))
    return 0


if __name__ == "__main__":
    sys.exit(main())
