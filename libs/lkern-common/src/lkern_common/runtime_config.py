"""
================================================================
FILE: runtime_config.py
PATH: /libs/lkern-common/src/lkern_common/runtime_config.py
DESCRIPTION: Settings changed at runtime (the log level): kept in the service's database,
             read by every worker process
VERSION: v1.0.0
UPDATED: 2026-12-02 06:30:00
================================================================

``PUT /config/log-level`` (lkern_common.web.log_level) writes the level into the service's
``runtime_settings`` table and applies it in the worker that answered. Every worker process
(HTTP_WORKERS > 1: each runs the whole app) runs a :class:`LogLevelWatcher` that reads the row
every LOG_LEVEL_POLL_SECONDS and applies a change; at start it reads it before serving, so a
level set once is kept across restarts until it is set again. Polling, not LISTEN/NOTIFY:
one indexed single-row read per worker every few seconds costs nothing and needs no dedicated
connection per worker, and it recovers by itself when the database comes back.

The table belongs to each service's database and is created by its migration with the
versioned helpers here (like the outbox's)::

    from lkern_common.runtime_config import create_runtime_settings_table_v1, \\
        drop_runtime_settings_table_v1
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import DateTime, String, Text, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, mapped_column

from lkern_common.database import Base, Database
from lkern_common.logging_setup import LOG_LEVELS, current_log_level, set_log_level

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
RUNTIME_SETTINGS_TABLE = "runtime_settings"
LOG_LEVEL_SETTING = "log_level"
TABLE_COMMENT = "Settings changed at runtime through the API (e.g. the log level), per service"


# === MODEL ===
class RuntimeSetting(Base):
    """One setting changed at runtime: its name, value (text), when and by whom."""

    __tablename__ = RUNTIME_SETTINGS_TABLE
    __table_args__ = ({"comment": TABLE_COMMENT},)

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(Text, nullable=True)


# === MIGRATION HELPERS ===
def create_runtime_settings_table_v1(op: Any) -> None:
    """Create ``runtime_settings`` (version 1) from a migration's upgrade."""
    op.create_table(
        RUNTIME_SETTINGS_TABLE,
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runtime_settings")),
        comment=TABLE_COMMENT,
    )


def drop_runtime_settings_table_v1(op: Any) -> None:
    """Drop ``runtime_settings`` (version 1) from a migration's downgrade."""
    op.drop_table(RUNTIME_SETTINGS_TABLE)


# === READ / WRITE ===
async def stored_log_level(db: Database) -> str | None:
    """The level stored with PUT /config/log-level, None when none was set."""
    # No span for this background read (it would be a new trace every few seconds).
    with suppress_instrumentation():
        async with db.engine.connect() as connection:
            value = await connection.scalar(
                select(RuntimeSetting.value).where(RuntimeSetting.name == LOG_LEVEL_SETTING)
            )
    return value if value in LOG_LEVELS else None


async def store_log_level(db: Database, level: str, subject: str | None) -> None:
    """Keep ``level`` (one of LOG_LEVELS) for every worker and the next start."""
    statement = pg_insert(RuntimeSetting).values(
        name=LOG_LEVEL_SETTING, value=level, updated_by=subject
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RuntimeSetting.name],
        set_={"value": level, "updated_by": subject, "updated_at": func.now()},
    )
    async with db.transaction() as session:
        await session.execute(statement)


def apply_log_level(level: str, why: str) -> None:
    """Set this process's level when it differs, with one line saying so."""
    if level == current_log_level():
        return
    set_log_level(level)
    logging.getLogger(__name__).warning("Log level is now %s (%s)", level.upper(), why)


# === WATCHER ===
class LogLevelWatcher:
    """Applies the stored log level in this process at start and whenever it changes."""

    def __init__(self, db: Database, interval_seconds: float) -> None:
        self._db = db
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Apply the stored level now (a database error only logs), then watch it."""
        await self._check("stored with PUT /config/log-level")
        self._task = asyncio.create_task(self._watch(), name="log-level-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._check("changed with PUT /config/log-level")

    async def _check(self, why: str) -> None:
        try:
            level = await stored_log_level(self._db)
        except Exception as exc:  # the database may be away for a while: keep the level
            logger.debug("Reading the stored log level failed: %s", exc)
            return
        if level is not None:
            apply_log_level(level, why)
