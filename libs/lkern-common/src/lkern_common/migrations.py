"""
================================================================
FILE: migrations.py
PATH: /libs/lkern-common/src/lkern_common/migrations.py
DESCRIPTION: Alembic helpers: one async env.py for every service, database creation, upgrade to head
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, make_url, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from lkern_common.settings import normalize_database_url

# === LOGGING ===
logger = logging.getLogger(__name__)


# === ALEMBIC ENV ===
def run_alembic_env(target_metadata: MetaData, default_url: str) -> None:
    """
    Body of every service's ``alembic/env.py``. The URL is the one set on the Alembic config
    (tests and ``lkern migrate`` set it) or else the service's ``DATABASE_URL`` setting.
    """
    config = context.config
    url = normalize_database_url(config.get_main_option("sqlalchemy.url") or default_url)
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "compare_type": True,
        "compare_server_default": True,
    }
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run_sync(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def run_online() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(run_sync)
        await engine.dispose()

    asyncio.run(run_online())


# === DATABASE CREATION ===
def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(normalize_database_url(url)).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` when it does not exist. True when it was created."""
    name = make_url(url).database
    if not name:
        raise ValueError(f"The database URL names no database: {url}")
    connection = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        await connection.execute(f'CREATE DATABASE "{name}"')
        logger.info("Created database %s", name)
        return True
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (used by tests), closing other connections first."""
    name = make_url(url).database
    connection = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


# === MIGRATIONS ===
def alembic_config(service_dir: Path, url: str) -> Config:
    """The Alembic config of the service in ``service_dir``, pointed at ``url``."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "alembic"))
    config.set_main_option("sqlalchemy.url", normalize_database_url(url).replace("%", "%%"))
    # The caller's process already configured logging; env.py must not replace it.
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(service_dir: Path, url: str) -> None:
    """Run the service's migrations up to head (synchronous; call it outside an event loop)."""
    command.upgrade(alembic_config(service_dir, url), "head")
