"""
================================================================
FILE: test_database.py
PATH: /libs/lkern-common/tests/test_database.py
DESCRIPTION: Database: read sessions without transaction round trips, sessions served in turn
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================
"""

# === IMPORTS ===
import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from lkern_common.database import Database
from lkern_common.settings import ServiceSettings
from lkern_devstack.testing import TestDatabase

# === CONSTANTS ===
LIB_DIR = Path(__file__).resolve().parents[1]


# === FIXTURES ===
@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    database = TestDatabase(LIB_DIR, "common_database")
    url = database.create(migrate=False)
    yield url
    database.drop()


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[Database]:
    """A Database whose pool has exactly one connection."""
    settings = ServiceSettings(database_url=database_url, db_pool_size=1, db_max_overflow=0)
    db = Database(settings)
    yield db
    await db.dispose()


# === TESTS ===
async def test_sessions_are_served_in_the_order_they_asked(one_connection: Database) -> None:
    """A newcomer must not take the connection ahead of sessions that have waited for it."""
    served: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def use(name: str, hold: bool = False) -> None:
        async with one_connection.read_session() as session:
            await session.execute(text("SELECT 1"))
            served.append(name)
            if hold:
                holding.set()
                await release.wait()

    first = asyncio.create_task(use("first", hold=True))
    await holding.wait()
    waiting = [asyncio.create_task(use(f"waiter {i}")) for i in range(3)]
    await asyncio.sleep(0.1)  # all three wait for the one connection
    release.set()
    await asyncio.sleep(0)  # the connection is being handed back…
    newcomer = asyncio.create_task(use("newcomer"))  # …when someone new asks
    await asyncio.gather(first, *waiting, newcomer)
    assert served == ["first", "waiter 0", "waiter 1", "waiter 2", "newcomer"]


async def test_read_session_sends_no_begin_or_commit(database_url: str) -> None:
    db = Database(ServiceSettings(database_url=database_url))
    sent: list[str] = []  # the simple queries asyncpg sends: BEGIN, COMMIT… (not prepared ones)

    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda query: sent.append(query.query))

    event.listen(db.engine.sync_engine, "connect", log_queries)
    try:
        async with db.read_session() as session:
            assert await session.scalar(text("SELECT 42")) == 42
            assert await session.scalar(text("SELECT 43")) == 43
        assert sent == []
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))
        assert [query.split()[0].rstrip(";") for query in sent] == ["BEGIN", "COMMIT"]
    finally:
        await db.dispose()
