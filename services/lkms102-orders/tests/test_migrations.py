"""
================================================================
FILE: test_migrations.py
PATH: /services/lkms102-orders/tests/test_migrations.py
DESCRIPTION: Migration tests: upgrade, downgrade, upgrade again; models and migrations agree
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from alembic import command
from sqlalchemy import make_url

from lkern_common.migrations import alembic_config
from lkern_devstack.testing import TestDatabase
from tests.conftest import SERVICE_DIR

# === CONSTANTS ===
TABLES = {"orders", "order_lines", "contacts_read_model", "inbox_events", "outbox_events"}


# === FIXTURES ===
@pytest.fixture
def empty_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "orders_mig")
    database.create(migrate=False)
    yield database
    database.drop()


def _schema(url: str) -> tuple[set[str], set[str]]:
    """Tables and sequences of the public schema."""

    async def fetch() -> tuple[set[str], set[str]]:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            tables = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            sequences = await connection.fetch(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
            return {r["tablename"] for r in tables}, {r["sequencename"] for r in sequences}
        finally:
            await connection.close()

    return asyncio.run(fetch())


# === TESTS ===
def test_upgrade_downgrade_upgrade(empty_database: TestDatabase) -> None:
    config = alembic_config(SERVICE_DIR, empty_database.url)
    command.upgrade(config, "head")
    tables, sequences = _schema(empty_database.url)
    assert tables >= TABLES
    assert "order_number_seq" in sequences
    command.downgrade(config, "base")
    assert _schema(empty_database.url) == ({"alembic_version"}, set())
    command.upgrade(config, "head")
    tables, sequences = _schema(empty_database.url)
    assert tables >= TABLES
    assert "order_number_seq" in sequences
    # The models and the migrations agree (raises when autogenerate finds a difference).
    command.check(config)
