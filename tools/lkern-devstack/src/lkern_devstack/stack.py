"""
================================================================
FILE: stack.py
PATH: /tools/lkern-devstack/src/lkern_devstack/stack.py
DESCRIPTION: The local stack: which parts run where, started and stopped in order
VERSION: v1.4.0
UPDATED: 2026-12-02 06:45:00
================================================================
"""

# === IMPORTS ===
import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

from lkern_common.migrations import ensure_database
from lkern_common.ports import port_is_free
from lkern_common.registry import ServiceEntry, discover_services, in_start_order
from lkern_common.settings import normalize_database_url
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_keys import DevAuth, dev_auth
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.postgres import EmbeddedPostgres
from lkern_devstack.process import REPO_ROOT, LineSink, ServiceProcess
from lkern_devstack.supervisor import (
    DRAIN_GRACE_S,
    consumer_groups_caught_up,
    stop_order,
    subscriptions_from_ready,
)

# === LOGGING ===
logger = logging.getLogger(__name__)


# === CONSTANTS ===
# Each worker of each service keeps two pools (SQLAlchemy's and asyncpg's for hot reads, each
# DB_POOL_SIZE / DB_DRIVER_POOL_SIZE), one worker per core: PostgreSQL's default of 100
# connections is too few on a machine with several cores (docs/performance.md).
LOCAL_POSTGRES_SETTINGS = {"max_connections": "300"}


# === SETTINGS ===
class StackSettings(BaseSettings):
    """
    Where the local stack runs. Every field is an environment variable (``LKERN_…``) and a CLI
    option of ``lkern up``. Without ``DATABASE_URL`` the stack starts its own PostgreSQL; without
    ``KAFKA_BOOTSTRAP_SERVERS`` its own Kafka-protocol broker (Tansu, memory only).

    Each service's ports are ``<short>_http_port`` / ``<short>_grpc_port`` (``LKERN_CONTACTS_
    HTTP_PORT``, ``--contacts-http-port``), one pair per service of the registry, kept in
    ``service_ports``; their defaults are the services' own (4NNN, 5NNN).
    """

    model_config = SettingsConfigDict(env_prefix="LKERN_", extra="ignore")

    data_dir: Path = REPO_ROOT / ".lkern"
    host: str = "127.0.0.1"
    postgres_port: int = 4501
    kafka_port: int = 4503
    service_ports: dict[str, int] = Field(default_factory=dict)
    # An existing PostgreSQL server: each service uses its own database on it.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LKERN_DATABASE_URL")
    )
    # An existing Kafka cluster.
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LKERN_KAFKA_BOOTSTRAP_SERVERS"),
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL"))

    @model_validator(mode="before")
    @classmethod
    def _collect_service_ports(cls, data: Any) -> Any:
        """``<short>_http_port`` / ``_grpc_port`` from the input or ``LKERN_…`` variables."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        ports = dict(data.get("service_ports") or {})
        for field in service_port_fields():
            value = data.pop(field, None) or os.environ.get(f"LKERN_{field.upper()}")
            if value is not None and field not in ports:
                ports[field] = int(value)
        return {**data, "service_ports": ports}

    def service_port(self, field: str) -> int:
        """A service's port by its field name (the registry's default unless overridden)."""
        return self.service_ports.get(field) or DEFAULT_SERVICE_PORTS[field]


# === SERVICES ===
PortKind = Literal["http", "grpc"]


@dataclass(frozen=True)
class ServiceDefinition:
    """A service of the stack: its declaration (lkern_common.registry) and where it runs."""

    entry: ServiceEntry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def database(self) -> str:
        return self.entry.database

    @property
    def trusts_events_of(self) -> tuple[str, ...]:
        """Services whose events this one consumes: it trusts their event signing keys."""
        return self.entry.consumes_events_of

    @property
    def http_port_field(self) -> str:
        return port_field(self.entry, "http")

    @property
    def grpc_port_field(self) -> str:
        return port_field(self.entry, "grpc")

    @property
    def service_dir(self) -> Path:
        return self.entry.directory

    @property
    def present(self) -> bool:
        return (self.service_dir / "app" / "main.py").is_file()

    def http_port(self, settings: StackSettings) -> int:
        return settings.service_port(self.http_port_field)

    def grpc_port(self, settings: StackSettings) -> int:
        return settings.service_port(self.grpc_port_field)


def port_field(entry: ServiceEntry, kind: PortKind) -> str:
    """``contacts_http_port``: the stack setting (and ``lkern up`` option) of a service's port."""
    return f"{entry.short_name}_{kind}_port"


# Every service of this checkout (services/*/pyproject.toml), each after the services it calls.
SERVICES = tuple(ServiceDefinition(entry) for entry in in_start_order(discover_services(REPO_ROOT)))
DEFAULT_SERVICE_PORTS = {
    port_field(service.entry, kind): getattr(service.entry, f"{kind}_port")
    for service in SERVICES
    for kind in ("http", "grpc")
}


def service_port_fields() -> list[str]:
    """The port settings of every service: contacts_http_port, contacts_grpc_port, …"""
    return list(DEFAULT_SERVICE_PORTS)


def present_services(only: str | None = None) -> list[ServiceDefinition]:
    """The services of this checkout (optionally one, by name or short name)."""
    services = [s for s in SERVICES if s.present]
    if only is not None:
        services = [s for s in services if only in (s.name, s.entry.short_name)]
        if not services:
            names = ", ".join(s.name for s in SERVICES if s.present)
            raise StackError(f"Unknown service {only!r}; the services are: {names}")
    return services


# === ERRORS ===
class StackError(RuntimeError):
    """A part of the stack cannot start; the message says which and why."""


# === HELPERS ===
def consumer_subscriptions(process: ServiceProcess) -> dict[str, list[str]] | None:
    """
    The consumer groups of a running service and their topics, as its /ready tells them; None
    when it does not answer (the stop then waits for every group on the broker).
    """
    try:
        response = httpx.get(f"{process.base_url}/ready", timeout=5.0)
        return subscriptions_from_ready(response.json()) or None
    except (httpx.HTTPError, ValueError):
        return None


# === STACK ===
class LocalStack:
    """
    The whole system on one machine: PostgreSQL (embedded unless DATABASE_URL), the broker
    (embedded unless KAFKA_BOOTSTRAP_SERVERS), each service's database and migrations, and each
    service as its own process. ``stop()`` stops the services first (producers of events
    before their consumers, which get a grace period to read what was published), then the
    broker, then PostgreSQL: the reverse of the start order.
    """

    def __init__(self, settings: StackSettings, sink: LineSink) -> None:
        self.settings = settings
        self.sink = sink
        self.postgres: EmbeddedPostgres | None = None
        self.broker: LocalBroker | None = None
        self.processes: list[ServiceProcess] = []
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._auth: DevAuth | None = None

    # --- what runs where ---
    @property
    def bootstrap_servers(self) -> str:
        if self.settings.kafka_bootstrap_servers:
            return self.settings.kafka_bootstrap_servers
        return f"{self.settings.host}:{self.settings.kafka_port}"

    def database_url(self, service: ServiceDefinition) -> str:
        if self.settings.database_url:
            server = make_url(normalize_database_url(self.settings.database_url))
        else:
            server = make_url(
                f"postgresql+asyncpg://postgres@{self.settings.host}:{self.settings.postgres_port}/postgres"
            )
        return server.set(database=service.database).render_as_string(hide_password=False)

    @property
    def pki(self) -> DevPki:
        """The development CA, certificates and event keys under the data folder."""
        return DevPki(self.settings.data_dir / "pki")

    @property
    def auth(self) -> DevAuth:
        """The stack's development token issuer (key made under <data>/auth/ on first use)."""
        if self._auth is None:
            self._auth = dev_auth(self.settings.data_dir)
        return self._auth

    def service_env(self, service: ServiceDefinition) -> dict[str, str]:
        # Where every other service's gRPC server is (<SHORT>_GRPC_TARGET; CONTACTS_GRPC_TARGET…).
        host = self.settings.host
        grpc_targets = {
            other.entry.grpc_target_variable: f"{host}:{other.grpc_port(self.settings)}"
            for other in SERVICES
        }
        return {
            **grpc_targets,
            **self.pki.service_env(service.name, service.trusts_events_of),
            **self.auth.service_env(),
            "DATABASE_URL": self.database_url(service),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": "false" if self.broker else "true",
            "GRPC_PORT": str(service.grpc_port(self.settings)),
            "HTTP_HOST": self.settings.host,
            "GRPC_HOST": self.settings.host,
            "LOG_LEVEL": self.settings.log_level,
        }

    def wanted_ports(self, services: list[ServiceDefinition]) -> list[tuple[int, str]]:
        ports: list[tuple[int, str]] = []
        if not self.settings.database_url:
            ports.append((self.settings.postgres_port, "PostgreSQL (lkms501-postgres)"))
        if not self.settings.kafka_bootstrap_servers:
            ports.append((self.settings.kafka_port, "Kafka broker (lkms503-kafka)"))
        for service in services:
            ports.append((service.http_port(self.settings), f"{service.name} REST"))
            ports.append((service.grpc_port(self.settings), f"{service.name} gRPC"))
        return ports

    # --- steps ---
    def check_ports(self, services: list[ServiceDefinition]) -> None:
        """Fail before starting anything when a port we need is taken."""
        for port, what in self.wanted_ports(services):
            if (what.startswith("PostgreSQL") and self._own_postgres_running()) or self._port_free(
                port, what
            ):
                continue
            raise StackError(
                f"Port {port} ({what}) on {self.settings.host} is already in use. Stop the process "
                f"that holds it (`ss -ltnp 'sport = :{port}'` shows it) or choose another port "
                f"(see `lkern up --help`)."
            )

    def _port_free(self, port: int, what: str) -> bool:
        try:
            return port_is_free(self.settings.host, port)
        except OSError as error:
            raise StackError(
                f"Cannot listen on {self.settings.host}:{port} ({what}): {error}"
            ) from error

    def _own_postgres_running(self) -> bool:
        return EmbeddedPostgres(self._postgres_dir(), self.settings.postgres_port).is_running()

    def _postgres_dir(self) -> Path:
        return self.settings.data_dir / "postgres"

    def ensure_pki(self) -> None:
        """Make the development CA, each service's certificate and event key (once; kept)."""
        self.pki.ensure(service.name for service in SERVICES)

    def start_postgres(self) -> None:
        if self.settings.database_url:
            return
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(
            self._postgres_dir(),
            self.settings.postgres_port,
            self.settings.host,
            server_settings=LOCAL_POSTGRES_SETTINGS,
        )
        self.postgres.start()
        self._stops.append(("PostgreSQL", self.postgres.stop))

    def create_databases(self, services: list[ServiceDefinition]) -> None:
        for service in services:
            asyncio.run(ensure_database(self.database_url(service)))

    def start_broker(self) -> None:
        if self.settings.kafka_bootstrap_servers:
            return
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = LocalBroker(
            self.settings.kafka_port, self.settings.host, self.settings.data_dir / "broker.log"
        )
        self.broker.start()
        self._stops.append(("Kafka broker", self.broker.stop))

    def service_process(self, service: ServiceDefinition) -> ServiceProcess:
        return ServiceProcess(
            service.name,
            env=self.service_env(service),
            http_port=service.http_port(self.settings),
            service_dir=service.service_dir,
            sink=self.sink,
        )

    def migrate(self, services: list[ServiceDefinition]) -> None:
        """Migrate every service's database, all at once (each migration is a child process)."""
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            runs = [pool.submit(self.service_process(service).migrate) for service in services]
            for run in runs:
                run.result()  # the first failure, after all have finished

    def start_service(self, service: ServiceDefinition) -> ServiceProcess:
        process = self.service_process(service)
        process.start()
        self.processes.append(process)
        return process

    def exited_service(self) -> ServiceProcess | None:
        """A service that stopped on its own, if any."""
        return next((p for p in self.processes if not p.is_running()), None)

    def _broker_available(self) -> bool:
        if self.settings.kafka_bootstrap_servers:
            return True
        return self.broker is not None and self.broker.is_running()

    def stop(self, drain_grace_s: float = DRAIN_GRACE_S) -> list[str]:
        """
        Stop everything started: the services (see :meth:`stop_services`), then the rest in
        reverse start order. Returns what was stopped, in that order.
        """
        stopped = self.stop_services(drain_grace_s)
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
                stopped.append(name)
            except Exception as exc:
                logger.error("Could not stop %s cleanly: %s", name, exc)
        return stopped

    def stop_services(self, drain_grace_s: float = DRAIN_GRACE_S) -> list[str]:
        """
        Stop the services, a producer of events before its consumers; before a consumer stops,
        wait (at most ``drain_grace_s``) until the consumer groups have read what the stopped
        producers' relays published, so no event is left unread in a memory-only broker.
        """
        consumes_from = {service.name: service.trusts_events_of for service in SERVICES}
        by_name = {process.name: process for process in self.processes}
        stopped: list[str] = []
        for name in stop_order(list(by_name), consumes_from):
            process = by_name[name]
            if consumes_from.get(name) and process.is_running() and self._broker_available():
                consumer_groups_caught_up(
                    self.bootstrap_servers,
                    drain_grace_s,
                    announce=lambda line: self.sink("lkern", line),
                    subscriptions=consumer_subscriptions(process),
                )
            try:
                process.stop()
                stopped.append(name)
            except Exception as exc:
                logger.error("Could not stop %s cleanly: %s", name, exc)
        self.processes.clear()
        return stopped
