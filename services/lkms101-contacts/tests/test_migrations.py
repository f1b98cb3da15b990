"""
================================================================
FILE: test_migrations.py
PATH: /services/lkms101-contacts/tests/test_migrations.py
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


# === FIXTURES ===
@pytest.fixture
def empty_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "contacts_mig")
    database.create(migrate=False)
    yield database
    database.drop()


def _tables(url: str) -> set[str]:
    async def fetch() -> set[str]:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            return {row["tablename"] for row in rows}
        finally:
            await connection.close()

    return asyncio.run(fetch())


# === TESTS ===
def test_upgrade_downgrade_upgrade(empty_database: TestDatabase) -> None:
    config = alembic_config(SERVICE_DIR, empty_database.url)
    command.upgrade(config, "head")
    assert "contacts" in _tables(empty_database.url)
    command.downgrade(config, "base")
    assert _tables(empty_database.url) == {"alembic_version"}
    command.upgrade(config, "head")
    assert "contacts" in _tables(empty_database.url)
    # The models and the migrations agree (raises when autogenerate finds a difference).
    command.check(config)
