"""
================================================================
FILE: database.py
PATH: /libs/lkern-common/src/lkern_common/database.py
DESCRIPTION: Declarative base, async engine and session handling shared by every service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from lkern_common.settings import ServiceSettings

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


# === BASE ===
class Base(DeclarativeBase):
    """Declarative base of every service's models (each service has its own database)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# === DATABASE ===
class Database:
    """
    One engine (connection pool) per process and its session factory. The app's lifespan
    creates it and disposes it; REST routes, gRPC servicers, the outbox relay and Kafka
    consumers all share it.

    Sessions take a slot of a FIFO gate before they take a pooled connection: the pool's own
    wait queue is not fair (a connection handed back goes to whoever asks first, often a request
    that has just arrived, while one that has waited for seconds waits on), so under a burst
    of more requests than connections some requests stalled for seconds. With the gate every
    request waits its turn, and the pool never has to queue.
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
        self._slots = settings.db_pool_size + settings.db_max_overflow
        self._gate: asyncio.Semaphore | None = None
        self._gate_loop: asyncio.AbstractEventLoop | None = None
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Same pool; each statement commits on its own (asyncpg then sends no BEGIN / COMMIT).
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )

    def _fair_gate(self) -> asyncio.Semaphore:
        """The gate of the running event loop (one per loop: tests may use several)."""
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate_loop is not loop:
            self._gate, self._gate_loop = asyncio.Semaphore(self._slots), loop
        return self._gate

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
        """Close every pooled connection."""
        await self.engine.dispose()
