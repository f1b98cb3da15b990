"""
================================================================
FILE: conftest.py
PATH: /services/lkms101-contacts/tests/conftest.py
DESCRIPTION: pytest fixtures: a migrated test database, the app with its lifespan, an HTTP client
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
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
from lkern_devstack.testing import TestDatabase

# === CONSTANTS ===
SERVICE_DIR = Path(__file__).resolve().parents[1]


# === DATABASE ===
@pytest.fixture(scope="session")
def test_database() -> Iterator[TestDatabase]:
    """A database of this test run, migrated to head, dropped at the end."""
    database = TestDatabase(SERVICE_DIR, "contacts")
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="session")
def settings(test_database: TestDatabase) -> Settings:
    return Settings(database_url=test_database.url, environment="test", grpc_port=0)


@pytest.fixture(autouse=True)
async def clean_tables(test_database: TestDatabase) -> AsyncIterator[None]:
    """Every test starts with empty tables."""
    yield
    await test_database.truncate("contacts")


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
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http_client:
        yield http_client
