"""
================================================================
FILE: registry.py
PATH: /libs/lkern-common/src/lkern_common/registry.py
DESCRIPTION: The service registry: each service's [tool.lkern] table, discovered from services/*
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

A service declares what the rest of the repository needs to know about it once, in the
``[tool.lkern]`` table of its ``pyproject.toml``::

    [project]
    name = "lkms101-contacts"

    [tool.lkern]
    number = 101                                 # lkmsNNN: REST 4NNN, gRPC 5NNN, lkmsNNN_<name>
    title = "L-KERN Contacts Service"
    description = "Contact management microservice (lkms101)"
    proto = "proto/contacts.proto"               # its gRPC contract
    scopes = ["contacts:read", "contacts:write"]
    topic_prefix = "lkern.contacts."             # the topics it publishes (and may create)
    grpc_clients = { "lkms102-orders" = ["contacts:read"] }   # who may call its gRPC server

Everything that lists services reads :func:`discover_services` (the devstack's ``lkern up``,
the generators of scripts/, the deployment tests; the Makefile globs the same folders), and a
service's own code reads :func:`load_service_entry` (its settings' defaults). It is a TOML
table, not Python, because every service's package is called ``app``: one process cannot
import two of them, but it can read every table. The runtime half of the
declaration (routers, servicers, consumers, hooks) is the service's ``app/spec.py``
(lkern_common.service.ServiceSpec).
"""

# === IMPORTS ===
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# === CONSTANTS ===
SERVICE_NAME_PATTERN = re.compile(r"^lkms(?P<number>[1-9][0-9]{2})-(?P<short>[a-z][a-z0-9]*)$")
HTTP_PORT_BASE = 4000
GRPC_PORT_BASE = 5000


# === ERRORS ===
class RegistryError(ValueError):
    """A service's declaration is missing or wrong; the message names the file and the field."""


# === ENTRY ===
@dataclass(frozen=True)
class ServiceEntry:
    """
    What one service declares about itself. ``name`` is ``lkmsNNN-<short>``; the ports and the
    database follow from the number unless the table sets them (L-KERN's port map).
    """

    name: str
    number: int
    title: str
    description: str
    directory: Path
    http_port: int
    grpc_port: int
    database: str
    proto: str | None = None
    scopes: tuple[str, ...] = ()
    # The prefix of the topics it publishes (lkern.<short>.); its users may write only those.
    topic_prefix: str = ""
    # Services whose events this one consumes (it trusts their signing keys) ...
    consumes_events_of: tuple[str, ...] = ()
    # ... and whose gRPC servers it calls (it starts after them; <SHORT>_GRPC_TARGET).
    calls: tuple[str, ...] = ()
    # Its consumer group (lkmsNNN-<short>-group) when it consumes events.
    consumer_group: str = ""
    # Who may call its gRPC server with which scopes: (service, scopes) pairs (hashable).
    grpc_clients: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def short_name(self) -> str:
        """``contacts`` of ``lkms101-contacts``: CLI options, env prefixes, proto package."""
        return self.name.split("-", 1)[1]

    @property
    def env_prefix(self) -> str:
        """``LKMS101``: the prefix of this service's variables in the compose file."""
        return self.name.split("-", 1)[0].upper()

    @property
    def grpc_target_variable(self) -> str:
        """The variable a caller's settings read this service's gRPC address from."""
        return f"{self.short_name.upper()}_GRPC_TARGET"

    @property
    def grpc_client_scopes(self) -> dict[str, list[str]]:
        """GRPC_CLIENT_SCOPES of this service: its settings' default and the compose file's."""
        return {name: list(scopes) for name, scopes in self.grpc_clients}

    @property
    def proto_stem(self) -> str | None:
        """``contacts`` of ``proto/contacts.proto``: the generated modules' name."""
        return Path(self.proto).stem if self.proto else None

    def local_database_url(self, port: int) -> str:
        """This service's database on the local stack's PostgreSQL (its settings' default)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{self.database}"


# === READING ===
def _strings(table: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RegistryError(f"{path}: [tool.lkern] {key} must be a list of strings")
    return tuple(value)


def _optional_string(table: dict[str, Any], key: str, path: Path) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise RegistryError(f"{path}: [tool.lkern] {key} must be a string")
    return value


def _grpc_clients(table: dict[str, Any], path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    clients = table.get("grpc_clients", {})
    if not isinstance(clients, dict):
        raise RegistryError(f"{path}: [tool.lkern] grpc_clients must be a table")
    return tuple((name, _strings(clients, name, path)) for name in sorted(clients))


def load_service_entry(service_dir: Path) -> ServiceEntry:
    """The declaration in ``<service_dir>/pyproject.toml`` (RegistryError when it is wrong)."""
    path = service_dir / "pyproject.toml"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise RegistryError(f"{path}: {error}") from None
    name = document.get("project", {}).get("name", "")
    match = SERVICE_NAME_PATTERN.match(name)
    if match is None:
        raise RegistryError(f"{path}: project.name {name!r} is not lkmsNNN-<name>")
    table = document.get("tool", {}).get("lkern")
    if not isinstance(table, dict):
        raise RegistryError(f"{path}: no [tool.lkern] table")
    number, short = int(match["number"]), match["short"]
    if table.get("number") != number:
        raise RegistryError(f"{path}: [tool.lkern] number must be {number} (the name's)")
    return ServiceEntry(
        name=name,
        number=number,
        title=str(table.get("title", name)),
        description=str(table.get("description", name)),
        directory=service_dir,
        http_port=int(table.get("http_port", HTTP_PORT_BASE + number)),
        grpc_port=int(table.get("grpc_port", GRPC_PORT_BASE + number)),
        database=str(table.get("database", name.replace("-", "_"))),
        proto=_optional_string(table, "proto", path),
        scopes=_strings(table, "scopes", path),
        topic_prefix=_optional_string(table, "topic_prefix", path) or f"lkern.{short}.",
        consumes_events_of=_strings(table, "consumes_events_of", path),
        calls=_strings(table, "calls", path),
        consumer_group=_optional_string(table, "consumer_group", path) or f"{name}-group",
        grpc_clients=_grpc_clients(table, path),
    )


def discover_services(repo_root: Path) -> list[ServiceEntry]:
    """
    Every service of the checkout: each ``services/*/`` with a pyproject.toml, by number.
    Numbers, ports and databases must be unique, and every service named in ``calls``,
    ``consumes_events_of`` or ``grpc_clients`` must exist.
    """
    entries = [
        load_service_entry(path.parent)
        for path in sorted((repo_root / "services").glob("*/pyproject.toml"))
    ]
    entries.sort(key=lambda entry: entry.number)
    _check_unique(entries)
    _check_references(entries)
    return entries


def _check_unique(entries: list[ServiceEntry]) -> None:
    for what in ("number", "http_port", "grpc_port", "database"):
        seen: dict[object, str] = {}
        for entry in entries:
            value = getattr(entry, what)
            if value in seen:
                raise RegistryError(f"{entry.name} and {seen[value]} have the same {what} {value}")
            seen[value] = entry.name


def _check_references(entries: list[ServiceEntry]) -> None:
    names = {entry.name for entry in entries}
    for entry in entries:
        clients = (name for name, _scopes in entry.grpc_clients)
        for other in (*entry.calls, *entry.consumes_events_of, *clients):
            if other not in names:
                raise RegistryError(f"{entry.name} names {other!r}, which is not a service")


def in_start_order(entries: list[ServiceEntry]) -> list[ServiceEntry]:
    """The services, each after the ones it calls (then by number)."""
    by_name = {entry.name: entry for entry in entries}
    ordered: list[ServiceEntry] = []

    def visit(entry: ServiceEntry, path: tuple[str, ...]) -> None:
        if entry in ordered:
            return
        if entry.name in path:
            raise RegistryError(f"services call each other in a circle: {' -> '.join(path)}")
        for called in entry.calls:
            visit(by_name[called], (*path, entry.name))
        ordered.append(entry)

    for entry in entries:
        visit(entry, ())
    return ordered
