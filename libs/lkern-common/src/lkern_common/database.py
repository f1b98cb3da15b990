"""
================================================================
FILE: database.py
PATH: /libs/lkern-common/src/lkern_common/database.py
DESCRIPTION: Declarative base, engine, sessions, asyncpg's pool for hot statements (all services)
VERSION: v1.5.0
UPDATED: 2026-12-02 14:05:00
================================================================
"""

# === IMPORTS ===
import asyncio
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

import asyncpg
from sqlalchemy import MetaData, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from lkern_common.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, DB_POOL_WAIT_SECONDS_TALLY
from lkern_common.settings import ServiceSettings
from lkern_common.tracing import instrument_engine, statement_span

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# Deterministic constraint names, so that Alembic migrations and `alembic check` agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Largest value of a PostgreSQL INTEGER (ids, offsets): larger values from clients are refused
# with a 422 instead of overflowing in the database.
INT32_MAX = 2**31 - 1


# Errors of the driver that mean the connection or the server is gone (restart, network), not a
# bug in a statement: the connection is dropped from the pool and the caller gets SQLAlchemy's
# OperationalError, the same error the session path raises (REST answers 503). A connection
# ended by the server just before a statement can also leave the driver's protocol state
# confused (InternalClientError): dropped the same way.
CONNECTION_LOST_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

# SQLSTATEs that mean "the database is not available right now", not a fault of the statement:
# class 08 connection exception (refused, reset, lost), 57P01 terminated by an administrator,
# 57P02 crash shutdown, 57P03 cannot connect now ("the database system is shutting down" /
# "is starting up"), 57P05 idle session timeout, 53300 too many connections.
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "57P05", "53300")

# errno values of a socket error that mean the server cannot be reached or went away.
UNREACHABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPIPE,
    }
)

# How long dispose() lets statements still running on the driver pool finish.
DRIVER_POOL_CLOSE_TIMEOUT_S = 5.0
DRIVER_POOL_IN_USE = DB_POOL_IN_USE.labels("driver")
CLOSE_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *CONNECTION_LOST_ERRORS)

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


# === CLASSIFICATION ===
def _is_unavailable_itself(error: BaseException) -> bool:
    """True when ``error`` alone (not what it was raised from) says the database is away."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool's wait for a connection timed out; a connection was lost
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True  # the driver's connection or protocol failed (DB-API's meaning of both)
    if isinstance(error, asyncpg.InterfaceError):
        # "connection is closed", but not a value the driver could not encode (a bug)
        return not isinstance(error, ValueError)
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.InternalClientError):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATE_PREFIXES):
        return True
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(error, OSError) and error.errno in UNREACHABLE_ERRNOS


def is_database_unavailable(error: BaseException) -> bool:
    """
    True when ``error``, or an exception it was raised from (``__cause__``, ``__context__``,
    SQLAlchemy's ``orig``), means "the database is not available right now" rather than a bug:
    the server shutting down or starting up, too many connections, a connection terminated by
    an administrator, refused, reset or timed out, a pool timeout. Raw asyncpg errors (hot
    reads on the driver) and SQLAlchemy's wrappers of them (often a plain ``DBAPIError``) are
    both recognised. REST answers these 503 with ``Retry-After``, gRPC ``UNAVAILABLE``, the
    event consumer retries instead of dead-lettering (docs/errors.md).
    """
    chain = _error_chain(error)
    if any(
        isinstance(item, asyncpg.InterfaceError) and isinstance(item, ValueError) for item in chain
    ):
        return False  # asyncpg's DataError / ClientConfigurationError, however wrapped: a bug
    return any(_is_unavailable_itself(item) for item in chain)


def error_summary(error: BaseException) -> str:
    """``Class: first line of the message``: enough for a log line, never a stack trace."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it was raised from (cause, context, SQLAlchemy's orig)."""
    seen: dict[int, BaseException] = {}
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen[id(current)] = current
        orig = getattr(current, "orig", None)
        pending += [
            current.__cause__,
            current.__context__,
            orig if isinstance(orig, BaseException) else None,
        ]
    return list(seen.values())


# === BASE ===
class Base(DeclarativeBase):
    """Declarative base of every service's models (each service has its own database)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# === DIRECT READS ===
class Record(asyncpg.Record):  # type: ignore[misc]
    """
    A row read by :meth:`Database.fetch_one` / :meth:`Database.fetch_all`: asyncpg's record
    (``row["name"]``, ``row[0]``) with attribute access (``row.name``) like SQLAlchemy's ``Row``,
    so response schemas (``from_attributes``) and gRPC messages read both the same way.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Query:
    """
    A SQLAlchemy Core statement compiled once into the SQL text and parameter order asyncpg
    takes.

    Hot reads (a key lookup, a page) run it on the driver pool (``Database.fetch_one`` /
    ``fetch_all``), a hot write inside a transaction through :func:`fetch_row_in_transaction`
    (orders' read-model upsert). SQLAlchemy's execution layer (greenlet hops, cursor
    adaptation, result objects) costs ~0.25 ms per statement here, several times PostgreSQL's
    own work for a key lookup (docs/performance.md); the statement itself is still written
    with SQLAlchemy, and asyncpg prepares it once per connection. Parameters are plain values
    asyncpg knows (ints, strings, lists): no SQLAlchemy type processing is applied to them.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = str(self._compiled)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional arguments: the named ``params`` and the values bound in the statement."""
        values = self._compiled.construct_params(dict(params)) or {}
        return [values[name] for name in self._compiled.positiontup or ()]


# === DRIVER IN A TRANSACTION ===
async def fetch_row_in_transaction(
    session: AsyncSession, sql: str, *arguments: Any
) -> asyncpg.Record | None:
    """
    The first row of a plain SQL statement run on the asyncpg connection under ``session``
    (from :meth:`Database.transaction`), inside its transaction: a hot statement of a
    transaction that needs no ORM (an event's upsert), without SQLAlchemy's execution layer.
    SQLAlchemy begins the transaction at its first statement; when none ran yet, a trivial one
    through the session begins it (a BEGIN of our own would be unknown to SQLAlchemy, which
    would then never commit it).
    """
    connection = await session.connection()
    driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await connection.exec_driver_sql("SELECT 1")
        if not driver.is_in_transaction():  # an autocommit session: no transaction to join
            raise RuntimeError("fetch_row_in_transaction needs a session in a transaction")
    with statement_span(sql, connection.engine.url.database):
        row: asyncpg.Record | None = await driver.fetchrow(sql, *arguments)
        return row


# === FAIR GATES ===
class _TimedGate(asyncio.Semaphore):
    """The FIFO gate, timing each wait for a slot (``lkern_db_pool_wait_seconds``)."""

    def __init__(self, slots: int, pool: str) -> None:
        super().__init__(slots)
        self._labels = (pool,)

    async def __aenter__(self) -> None:
        started = time.perf_counter()
        await self.acquire()
        DB_POOL_WAIT_SECONDS_TALLY.observe(self._labels, time.perf_counter() - started)


class _FairGate:
    """
    A FIFO gate of ``slots`` in front of a pool, one per event loop (tests may use several).
    A pool's own wait queue is not fair: a connection handed back goes to whoever asks first,
    often a request that has just arrived, while one that has waited for seconds waits on (a
    waiter woken too late finds the queue empty and goes to its end). Through the gate every
    caller waits its turn, and the pool never has to queue.
    """

    def __init__(self, slots: int, pool: str) -> None:
        self.slots = slots
        self.pool = pool  # the metrics' label
        self._gate: _TimedGate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        DB_POOL_SIZE.labels(pool).set(slots)

    def __call__(self) -> _TimedGate:
        loop = asyncio.get_running_loop()
        if self._gate is None or self._loop is not loop:
            self._gate, self._loop = _TimedGate(self.slots, self.pool), loop
        return self._gate


def _close_quietly(connection: asyncpg.Connection) -> None:
    """Close a driver connection at once, unless the pool dropped it already (it was closed)."""
    with suppress(asyncpg.InterfaceError):
        connection.terminate()


async def _leave_session_as_is(_connection: asyncpg.Connection) -> None:
    """
    The driver pool's reset on release: nothing to send. Its statements autocommit one by one
    and change no session state (no SET, LISTEN or advisory lock), while asyncpg's default
    reset is one more round trip per statement (an open transaction is still rolled back).
    """


def _count_checkouts(engine: AsyncEngine) -> None:
    """Keep ``lkern_db_pool_connections_in_use`` with the pool's checkouts and checkins."""
    in_use = DB_POOL_IN_USE.labels("orm")

    def checked_out(*_: Any) -> None:
        in_use.inc()

    def checked_in(*_: Any) -> None:
        in_use.dec()

    event.listen(engine.sync_engine, "checkout", checked_out)
    event.listen(engine.sync_engine, "checkin", checked_in)


# === DATABASE ===
class Database:
    """
    The database of a service in one process: SQLAlchemy's engine (connection pool) and its
    session factory for the ORM, and asyncpg's own pool for the hot statements that need no
    ORM (:meth:`fetch_row` / :meth:`fetch_rows`: reads, the one-statement create). The app's
    lifespan creates it and disposes it; REST routes, gRPC servicers, the outbox relay and
    Kafka consumers all share it.

    Each pool has a FIFO gate in front of it (:class:`_FairGate`): under a burst of more
    requests than connections every request waits its turn instead of some stalling for
    seconds. The driver pool skips SQLAlchemy's checkout, events and adaptation and asyncpg's
    reset statement: a key lookup costs about half the CPU (docs/performance.md).
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=settings.db_pool_pre_ping,
            pool_recycle=settings.db_pool_recycle_seconds,
            echo=settings.db_echo,
            connect_args={"server_settings": {"application_name": settings.service_name}},
        )
        # A span per statement while tracing is on (lkern_common.tracing; no-op when off).
        instrument_engine(self.engine)
        self._fair_gate = _FairGate(settings.db_pool_size + settings.db_max_overflow, "orm")
        self._driver_gate = _FairGate(settings.db_driver_pool_size, "driver")
        _count_checkouts(self.engine)
        self._driver_settings = settings
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_loop: asyncio.AbstractEventLoop | None = None
        self._driver_lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._query_loggers: list[Callable[[Any], None]] = []
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; each statement commits on its own (asyncpg then sends no BEGIN / COMMIT).
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block succeeds and rolls back on error."""
        async with self._fair_gate(), self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """
        A session for work that only reads: every statement runs in autocommit, so a read is
        one round trip instead of three (BEGIN, SELECT, COMMIT). Under READ COMMITTED (the
        default) a transaction would not give several statements one snapshot anyway; work
        that writes, or needs locks, uses :meth:`transaction`.
        """
        async with self._fair_gate(), self.read_sessionmaker() as session:
            yield session

    async def fetch_one(self, query: Query, **params: Any) -> Record | None:
        """The first row of a read (autocommit, no ORM), or None."""
        async with self._driver_connection(query.sql) as connection:
            row: Record | None = await connection.fetchrow(
                query.sql, *query.arguments(params), record_class=Record
            )
            return row

    async def fetch_all(self, query: Query, **params: Any) -> list[Record]:
        """Every row of a read (autocommit, no ORM)."""
        async with self._driver_connection(query.sql) as connection:
            rows: list[Record] = await connection.fetch(
                query.sql, *query.arguments(params), record_class=Record
            )
            return rows

    async def fetch_row(self, sql: str, *arguments: Any) -> asyncpg.Record | None:
        """The first row of a plain SQL statement on the driver (autocommit), or None."""
        async with self._driver_connection(sql) as connection:
            row: asyncpg.Record | None = await connection.fetchrow(sql, *arguments)
            return row

    async def fetch_rows(self, sql: str, *arguments: Any) -> list[asyncpg.Record]:
        """Every row of a plain SQL statement on the driver (autocommit)."""
        async with self._driver_connection(sql) as connection:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *arguments)
            return rows

    def add_query_logger(self, log: Callable[[Any], None]) -> None:
        """Call ``log`` with asyncpg's LoggedQuery of every statement of the driver pool."""
        self._query_loggers.append(log)

    def remove_query_logger(self, log: Callable[[Any], None]) -> None:
        self._query_loggers.remove(log)

    @asynccontextmanager
    async def _driver_connection(self, sql: str) -> AsyncIterator[asyncpg.Connection]:
        """
        A connection of the driver pool, taken through its gate. No transaction is begun: each
        statement commits on its own. A connection that turns out to be gone is closed (the
        pool opens a new one) and the error re-raised as SQLAlchemy's OperationalError, the
        error the session path raises (REST answers 503).
        """
        pool = await self._pool_of_this_loop()
        async with self._driver_gate(), pool.acquire() as connection:
            DRIVER_POOL_IN_USE.inc()
            loggers = tuple(self._query_loggers)
            for log in loggers:
                connection.add_query_logger(log)
            try:
                with statement_span(sql, self.engine.url.database):
                    yield connection
            except CONNECTION_LOST_ERRORS as error:
                _close_quietly(connection)
                raise sa_exc.OperationalError(sql, None, error) from error
            finally:
                DRIVER_POOL_IN_USE.dec()
                with suppress(asyncpg.InterfaceError):  # closed: the pool dropped it already
                    for log in loggers:
                        connection.remove_query_logger(log)

    async def _pool_of_this_loop(self) -> asyncpg.Pool:
        """The driver pool, made at first use (no connection opened until one is needed)."""
        loop = asyncio.get_running_loop()
        if self._driver_pool is not None and self._driver_loop is loop:
            return self._driver_pool
        if self._lock_loop is not loop:  # a lock of another loop cannot be awaited in this one
            self._driver_lock, self._lock_loop = asyncio.Lock(), loop
        async with self._driver_lock:
            if self._driver_pool is None or self._driver_loop is not loop:
                self._driver_pool = await self._create_driver_pool()
                self._driver_loop = loop
        return self._driver_pool

    async def _create_driver_pool(self) -> asyncpg.Pool:
        settings = self._driver_settings
        url = self.engine.url.set(drivername="postgresql")
        pool: asyncpg.Pool = await asyncpg.create_pool(
            url.render_as_string(hide_password=False),
            min_size=0,
            max_size=settings.db_driver_pool_size,
            max_inactive_connection_lifetime=settings.db_pool_recycle_seconds,
            reset=_leave_session_as_is,
            server_settings={"application_name": settings.service_name},
        )
        return pool

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            logger.warning("Database ping failed: %s", exc)
            return False

    async def dispose(self) -> None:
        """Close every pooled connection of both pools."""
        pool, self._driver_pool = self._driver_pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), DRIVER_POOL_CLOSE_TIMEOUT_S)
            except CLOSE_ERRORS:
                pool.terminate()  # a statement still running, or the server already gone
        await self.engine.dispose()
