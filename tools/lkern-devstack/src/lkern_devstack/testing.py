"""
================================================================
FILE: testing.py
PATH: /tools/lkern-devstack/src/lkern_devstack/testing.py
DESCRIPTION: Test support shared by every service's tests: a fresh migrated database per run
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from lkern_common.migrations import drop_database, ensure_database, upgrade_to_head

# === CONSTANTS ===
# The PostgreSQL server the tests use: the machine's own (CI and dev machines run one on 5432).
TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


# === TEST DATABASE ===
class TestDatabase:
    """
    A database of its own for one test run: created with a unique name, migrated with the
    service's Alembic migrations (never ``create_all``), emptied between tests, dropped at the end.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, service_dir: Path, prefix: str) -> None:
        self.service_dir = service_dir
        name = f"test_{prefix}_{uuid.uuid4().hex[:10]}"
        self.url = (
            make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        )

    def create(self, migrate: bool = True) -> str:
        """Create (and migrate) the database; returns its URL. Call outside an event loop."""
        asyncio.run(ensure_database(self.url))
        if migrate:
            upgrade_to_head(self.service_dir, self.url)
        return self.url

    def drop(self) -> None:
        """Drop the database."""
        asyncio.run(drop_database(self.url))

    async def truncate(self, *tables: str) -> None:
        """Empty ``tables`` and restart their id sequences."""
        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()
