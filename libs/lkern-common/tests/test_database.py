"""
================================================================
FILE: test_database.py
PATH: /libs/lkern-common/tests/test_database.py
DESCRIPTION: Database: sessions served in turn, reads without transaction round trips, direct reads
VERSION: v1.3.0
UPDATED: 2026-12-02 13:35:00
================================================================
"""

# === IMPORTS ===
import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, String, bindparam, column, event, select, table, text
from sqlalchemy.exc import OperationalError

from lkern_common.database import Database, Query, fetch_row_in_transaction
from lkern_common.settings import ServiceSettings
from lkern_devstack.testing import TestDatabase, eventually

# === CONSTANTS ===
LIB_DIR = Path(__file__).resolve().parents[1]


# An advisory lock a test holds in a transaction, so that a statement waiting for it keeps its
# connection busy for exactly as long as the test wants.
LOCK_KEY = 4242
WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
)


# === FIXTURES ===
@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    database = TestDatabase(LIB_DIR, "common_database")
    url = database.create(migrate=False)
    yield url
    database.drop()


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[Database]:
    """A Database whose pools (SQLAlchemy's and the driver's) have exactly one connection."""
    settings = ServiceSettings(
        database_url=database_url, db_pool_size=1, db_max_overflow=0, db_driver_pool_size=1
    )
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


# === DIRECT READS ===
NUMBERS = table("numbers", column("n", Integer), column("word", String))
NUMBERS_FROM = Query(
    select(NUMBERS).where(NUMBERS.c.n >= bindparam("lowest")).order_by(NUMBERS.c.n).limit(2)
)


@pytest.fixture
async def numbers(one_connection: Database) -> AsyncIterator[Database]:
    """``one_connection`` with a table ``numbers`` (1 one, 2 two, 3 three)."""
    async with one_connection.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS numbers"))
        await session.execute(text("CREATE TABLE numbers (n int PRIMARY KEY, word text)"))
        await session.execute(
            text("INSERT INTO numbers VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        )
    yield one_connection


async def test_statements_on_the_transactions_driver_commit_and_roll_back_with_it(
    numbers: Database,
) -> None:
    """They are the transaction's, also when they come first (its BEGIN is sent before)."""
    insert = "INSERT INTO numbers VALUES ($1, $2) RETURNING n"
    async with numbers.transaction() as session:
        row = await fetch_row_in_transaction(session, insert, 4, "four")
        assert row is not None and row["n"] == 4
    with pytest.raises(RuntimeError):
        async with numbers.transaction() as session:
            await fetch_row_in_transaction(session, insert, 5, "five")
            raise RuntimeError("the block fails: the statement rolls back")
    async with numbers.read_session() as session:  # autocommit: refused, not run on its own
        with pytest.raises(RuntimeError, match="in a transaction"):
            await fetch_row_in_transaction(session, insert, 6, "six")
    async with numbers.read_session() as session:
        words = (await session.scalars(text("SELECT word FROM numbers ORDER BY n"))).all()
    assert words == ["one", "two", "three", "four"]


async def test_fetch_reads_rows_by_attribute_key_and_index(numbers: Database) -> None:
    rows = await numbers.fetch_all(NUMBERS_FROM, lowest=2)  # limit 2: bound in the statement
    assert [(row.n, row["word"], row[1]) for row in rows] == [
        (2, "two", "two"),
        (3, "three", "three"),
    ]
    first = await numbers.fetch_one(NUMBERS_FROM, lowest=1)
    assert first is not None and first.word == "one"
    assert await numbers.fetch_one(NUMBERS_FROM, lowest=4) is None
    with pytest.raises(AttributeError):
        _ = first.missing


async def test_fetch_sends_one_statement_no_transaction_and_no_reset(numbers: Database) -> None:
    sent: list[str] = []
    numbers.add_query_logger(lambda query: sent.append(query.query))
    assert await numbers.fetch_one(NUMBERS_FROM, lowest=3) is not None
    assert await numbers.fetch_row("SELECT 1") is not None
    # asyncpg hands each logged statement over on a later loop turn.
    await eventually(lambda: len(sent) >= 2, "both statements are logged")
    # No BEGIN / COMMIT, and no reset statement when the connection goes back to the pool.
    assert [query.split()[0] for query in sent] == ["SELECT", "SELECT"]


async def test_direct_statements_are_served_in_the_order_they_asked(
    one_connection: Database,
) -> None:
    """The driver pool's own queue lets a newcomer overtake a waiter; its gate does not."""
    served: list[str] = []
    asked: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def use(name: str, sql: str = "SELECT 1", *arguments: Any) -> None:
        asked.append(name)  # then, in the same step, it queues at the gate
        await one_connection.fetch_row(sql, *arguments)
        served.append(name)

    def newcomer_when_first_ends(query: Any) -> None:
        # asyncpg calls this in the turn after the first statement ends, before the pool has
        # its connection back: the newcomer asks just before the first waiter is woken.
        if query.args == (LOCK_KEY,) and not tasks:
            tasks.append(asyncio.create_task(use("newcomer")))

    one_connection.add_query_logger(newcomer_when_first_ends)
    # The first statement holds the driver pool's one connection until the lock is let go.
    async with one_connection.transaction() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        first = asyncio.create_task(use("first", "SELECT pg_advisory_xact_lock($1)", LOCK_KEY))

        async def first_waits_for_the_lock() -> bool:
            return bool(await session.scalar(WAITING_FOR_A_LOCK))

        await eventually(first_waits_for_the_lock, "the first statement waits for the lock")
        waiting = [asyncio.create_task(use(f"waiter {i}")) for i in range(3)]
        await eventually(lambda: len(asked) == 4, "every waiter queues for the connection")
    await asyncio.gather(first, *waiting)
    await asyncio.gather(*tasks)
    assert served == ["first", "waiter 0", "waiter 1", "waiter 2", "newcomer"]


async def test_a_lost_connection_is_an_operational_error_and_is_replaced(
    numbers: Database,
) -> None:
    """The server ends the pooled connection (restart, failover): 503 for that read, then fine."""
    backend = await numbers.fetch_row("SELECT pg_backend_pid()")  # the driver pool's only one
    assert backend is not None
    pid = backend[0]
    running = asyncio.create_task(numbers.fetch_row("SELECT pg_sleep(30)"))
    terminator = Database(ServiceSettings(database_url=numbers.engine.url.render_as_string(False)))
    try:
        async with terminator.transaction() as session:
            sleeping = text(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND query LIKE '%pg_sleep%'"
            )

            async def statement_runs() -> bool:
                return bool(await session.scalar(sleeping, {"pid": pid}))

            await eventually(statement_runs, "the statement runs on the server")
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await terminator.dispose()
    with pytest.raises(OperationalError):
        await running
    row = await numbers.fetch_one(NUMBERS_FROM, lowest=1)  # a new connection
    assert row is not None and row.word == "one"
    replaced = await numbers.fetch_row("SELECT pg_backend_pid()")
    assert replaced is not None and replaced[0] != pid
