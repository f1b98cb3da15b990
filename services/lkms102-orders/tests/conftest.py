"""
================================================================
FILE: conftest.py
PATH: /services/lkms102-orders/tests/conftest.py
DESCRIPTION: pytest fixtures: migrated test databases, a local broker, a real contacts service
             process, the orders app with its lifespan, HTTP clients
VERSION: v1.1.0
UPDATED: 2026-12-02 03:10:00
================================================================

The orders tests cannot import the contacts `app` package (both services are called `app`), so
the contacts service runs as its own process (`python -m app` in its folder, as in production)
on free ports, on a test database migrated with its own migrations, and contacts are made
through its REST API.
"""

# === IMPORTS ===
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.database import Database
from app.main import create_app
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.process import ServiceProcess
from lkern_devstack.testing import TEST_CLIENT, TestDatabase, TestTokens, make_dev_pki

# === LOGGING ===
logger = logging.getLogger("tests")

# === CONSTANTS ===
SERVICE_DIR = Path(__file__).resolve().parents[1]
SERVICE = "lkms102-orders"
CONTACTS = "lkms101-contacts"
CONTACTS_DIR = SERVICE_DIR.parent / "lkms101-contacts"
CONTACTS_API = "/api/v1/contacts/"
ORDERS_API = "/api/v1/orders/"
# In the order the app's transactions lock them (consumer: inbox, read model; requests: read
# model, orders, lines, outbox), so that TRUNCATE cannot deadlock with the running consumer.
# The test run's token issuer: both services trust its JWKS; `client`, `http_client` and
# ContactsService send its all-scopes token.
TOKENS = TestTokens.temporary()
TABLES = (
    "inbox_events",
    "contacts_read_model",
    "orders",
    "order_lines",
    "outbox_events",
    "idempotency_keys",
)


# === HELPERS ===
def log_sink(name: str, line: str) -> None:
    """A child process's output into the test log (shown when a test fails)."""
    logging.getLogger(f"process.{name}").info("%s", line)


class ContactsService:
    """A real lkms101-contacts process and its REST API, for the orders tests."""

    def __init__(self, database: TestDatabase, bootstrap_servers: str, pki: DevPki) -> None:
        self.database = database
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.process = ServiceProcess(
            CONTACTS,
            service_dir=CONTACTS_DIR,
            env={
                **pki.service_env(CONTACTS),
                "DATABASE_URL": database.url,
                "GRPC_PORT": str(self.grpc_port),
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "ENVIRONMENT": "test",
                "LOG_LEVEL": "INFO",
                **{name.upper(): value for name, value in TOKENS.settings().items()},
            },
            http_port=self.http_port,
            sink=log_sink,
        )

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready()

    def stop(self) -> None:
        self.process.stop()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.process.base_url, timeout=10.0, headers=TOKENS.bearer()
        )

    async def create_contact(self, **fields: Any) -> dict[str, Any]:
        """Create a contact with a unique email; returns its JSON."""
        body = {"name": "Jana Nováková", "email": f"jana-{uuid.uuid4().hex[:12]}@example.com"}
        body.update(fields)
        async with self.client() as client:
            response = await client.post(CONTACTS_API, json=body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    async def update_contact(self, contact_id: int, **fields: Any) -> dict[str, Any]:
        async with self.client() as client:
            response = await client.put(f"{CONTACTS_API}{contact_id}", json=fields)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def delete_contact(self, contact_id: int) -> None:
        async with self.client() as client:
            response = await client.delete(f"{CONTACTS_API}{contact_id}")
        assert response.status_code == 204, response.text


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    wanted: Callable[[ConsumerRecord[bytes, bytes]], bool],
    count: int = 1,
    wait_seconds: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """
    The first ``count`` records of ``topic`` (from the beginning, every partition) for which
    ``wanted(record)`` is true; waits for them at most ``wait_seconds`` seconds.
    """
    reader: AIOKafkaConsumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        metadata_max_age_ms=1000,
    )
    found: list[ConsumerRecord[bytes, bytes]] = []
    await reader.start()
    try:
        deadline = time.monotonic() + wait_seconds
        while len(found) < count and time.monotonic() < deadline:
            batches = await reader.getmany(timeout_ms=500)
            found.extend(r for records in batches.values() for r in records if wanted(r))
    finally:
        await reader.stop()
    assert len(found) >= count, f"{count} records wanted on {topic}, {len(found)} found"
    return found[:count]


# === TOKENS ===
@pytest.fixture(scope="session")
def tokens() -> TestTokens:
    """Mints access tokens both services accept: ``tokens.bearer(ORDERS_READ, subject="bob")``."""
    return TOKENS


# === DEVELOPMENT PKI ===
@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A CA, the services' certificates and event keys for this run (as `lkern up` makes)."""
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


# === BROKER ===
@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """A local Kafka-protocol broker (Tansu) for this test run."""
    with LocalBroker(port=free_port()) as local_broker:
        yield local_broker


# === DATABASES ===
@pytest.fixture(scope="session")
def test_database() -> Iterator[TestDatabase]:
    """The orders database of this test run, migrated to head, dropped at the end."""
    database = TestDatabase(SERVICE_DIR, "orders")
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def contacts_database() -> Iterator[TestDatabase]:
    """A contacts database (migrated with the contacts service's own migrations)."""
    database = TestDatabase(CONTACTS_DIR, "orders_contacts")
    database.create()
    yield database
    database.drop()


# === CONTACTS SERVICE ===
@pytest.fixture(scope="session")
def contacts(
    contacts_database: TestDatabase, broker: LocalBroker, dev_pki: DevPki
) -> Iterator[ContactsService]:
    """The contacts service as a process (REST + gRPC), shared by the tests."""
    service = ContactsService(contacts_database, broker.bootstrap_servers, dev_pki)
    service.start()
    yield service
    service.stop()


# === SETTINGS ===
def make_settings(
    test_database: TestDatabase,
    broker: LocalBroker,
    contacts_target: str,
    pki: DevPki,
    **overrides: Any,
) -> Settings:
    """
    Orders settings for a test: free gRPC port, the test broker, a fresh consumer group, the
    run's certificates and event keys (orders trusts contacts' events).
    """
    values: dict[str, Any] = {
        **pki.grpc_tls_settings(SERVICE),
        **pki.event_settings(SERVICE, trusted=[CONTACTS]),
        # The tests call orders' gRPC as the test client.
        "grpc_client_scopes": {TEST_CLIENT: ["orders:read"]},
        **TOKENS.settings(),
        "database_url": test_database.url,
        "environment": "test",
        "grpc_port": 0,
        "kafka_bootstrap_servers": broker.bootstrap_servers,
        "kafka_consumer_group_id": f"lkms102-orders-test-{uuid.uuid4().hex[:8]}",
        "kafka_consumer_session_timeout_ms": 6000,
        "kafka_consumer_heartbeat_interval_ms": 1000,
        "kafka_consumer_retry_backoff_ms": 50,
        "kafka_consumer_max_attempts": 3,
        "contacts_grpc_target": contacts_target,
        "contacts_grpc_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(
    test_database: TestDatabase, broker: LocalBroker, contacts: ContactsService, dev_pki: DevPki
) -> Settings:
    return make_settings(test_database, broker, contacts.grpc_target, dev_pki)


@pytest.fixture(autouse=True)
async def clean_tables(test_database: TestDatabase) -> AsyncIterator[None]:
    """Every test starts with empty orders tables (contacts get unique emails instead)."""
    yield
    await test_database.truncate(*TABLES)


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits at the end of the test (like a request)."""
    async with db.transaction() as session:
        yield session


# === APP ===
@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The orders app with its lifespan running (gRPC server, contacts client, consumer)."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=60):
        yield application


@asynccontextmanager
async def http_client(
    application: FastAPI, *, authenticated: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``application``; it sends an all-scopes token unless ``authenticated=False``."""
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    headers = TOKENS.bearer() if authenticated else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that sends an all-scopes bearer token (subject "test-user")."""
    async with http_client(app) as orders_client:
        yield orders_client


@pytest.fixture
async def anonymous_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that sends no token."""
    async with http_client(app, authenticated=False) as orders_client:
        yield orders_client
