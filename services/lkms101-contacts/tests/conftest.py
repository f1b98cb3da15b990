"""
================================================================
FILE: conftest.py
PATH: /services/lkms101-contacts/tests/conftest.py
DESCRIPTION: pytest fixtures: test database, dev PKI, the app (lifespan), HTTP clients, tokens
VERSION: v1.2.0
UPDATED: 2026-12-02 03:10:00
================================================================
"""

# === IMPORTS ===
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.database import Database
from app.main import create_app
from lkern_common.grpc_clients.contacts import ContactsClientSettings
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TestDatabase, TestTokens, make_dev_pki, running_broker

# === CONSTANTS ===
SERVICE_DIR = Path(__file__).resolve().parents[1]
SERVICE = "lkms101-contacts"
ORDERS = "lkms102-orders"  # the caller GRPC_CLIENT_SCOPES allows by default
# The test run's token issuer: the app trusts its JWKS, `client` sends its all-scopes token.
TOKENS = TestTokens.temporary()


# === TOKENS ===
@pytest.fixture(scope="session")
def tokens() -> TestTokens:
    """Mints access tokens the app accepts: ``tokens.bearer(CONTACTS_READ, subject="bob")``."""
    return TOKENS


# === DEVELOPMENT PKI ===
@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A CA, the services' certificates and event keys for this run (as `lkern up` makes)."""
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def orders_client_settings(dev_pki: DevPki) -> ContactsClientSettings:
    """Contacts client settings of the orders service (its client certificate)."""
    files = dev_pki.tls_files(ORDERS)
    return ContactsClientSettings(tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key)


# === DATABASE ===
@pytest.fixture(scope="session")
def test_database() -> Iterator[TestDatabase]:
    """A database of this test run, migrated to head, dropped at the end."""
    database = TestDatabase(SERVICE_DIR, "contacts")
    database.create()
    yield database
    database.drop()


# === BROKER ===
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A local broker on a free port for this run (never the dev stack's: no stray events)."""
    with running_broker(tmp_path_factory.mktemp("kafka") / "tansu.log") as broker:
        yield broker


@pytest.fixture(scope="session")
def settings(test_database: TestDatabase, kafka_broker: LocalBroker, dev_pki: DevPki) -> Settings:
    return Settings(
        **dev_pki.grpc_tls_settings(SERVICE),
        **dev_pki.event_settings(SERVICE),
        **TOKENS.settings(),
        database_url=test_database.url,
        environment="test",
        grpc_port=0,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        # The outbox relay, tuned for tests (tests/test_events.py): it never polls within a
        # run, so only LISTEN/NOTIFY can wake it; a paused broker fails a round within 5 s
        # and the relay retries within a second.
        outbox_poll_interval_seconds=3600.0,
        outbox_cleanup_interval_seconds=3600.0,
        outbox_backlog_log_interval_seconds=3600.0,
        kafka_request_timeout_ms=5000,
        outbox_retry_backoff_max_seconds=1.0,
        outbox_standby_retry_seconds=0.5,
        # Every request's access line (tests read them; the default samples successful ones).
        log_requests_sample=1.0,
    )


@pytest.fixture(autouse=True)
async def clean_tables(test_database: TestDatabase) -> AsyncIterator[None]:
    """Every test starts with empty tables."""
    yield
    await test_database.truncate("contacts", "idempotency_keys")


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
@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that sends an all-scopes bearer token (subject "test-user")."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=TOKENS.bearer()
    ) as http_client:
        yield http_client


@pytest.fixture
async def anonymous_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that sends no token."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client
