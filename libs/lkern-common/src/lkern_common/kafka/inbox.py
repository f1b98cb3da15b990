"""
================================================================
FILE: inbox.py
PATH: /libs/lkern-common/src/lkern_common/kafka/inbox.py
DESCRIPTION: Consumer inbox: applied event ids, their claim, migration helpers, retention cleanup
VERSION: v1.1.0
UPDATED: 2026-12-02 13:00:00
================================================================

The inbox records the ``event_id`` of every event a service's consumer has applied, in the same
transaction as the event's effect (see :mod:`lkern_common.kafka.consumer`). A redelivered event
finds its id already there and is skipped: at-least-once delivery, exactly-once effect.

The table belongs to the consuming service's database and is created by that service's Alembic
migration, which calls the versioned helpers here::

    from lkern_common.kafka.inbox import create_inbox_table_v1, drop_inbox_table_v1

    def upgrade() -> None:
        create_inbox_table_v1(op)

    def downgrade() -> None:
        drop_inbox_table_v1(op)

and the service imports this module (``app/models/__init__.py``) so that ``InboxEvent`` is in
its metadata and ``alembic check`` agrees with the migration. A later change of the table gets a
``..._v2`` helper; a ``_v1`` helper never changes, so old migrations keep meaning what they did.

Only events that were applied are recorded. An event sent to the dead-letter topic is not, so it
can be replayed (republished with the same ``event_id``) once its cause is fixed.
"""

# === IMPORTS ===
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import BigInteger, DateTime, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from lkern_common.database import Base, Database

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
INBOX_TABLE = "inbox_events"
# Rows deleted per statement by the retention cleanup (short transactions, short locks).
PURGE_BATCH_SIZE = 5000


# === MODEL ===
class InboxEvent(Base):
    """One applied event: its id, where it came from, and when it was applied."""

    __tablename__ = INBOX_TABLE
    __table_args__ = (Index("ix_inbox_events_processed_at", "processed_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    # "partition"/"offset" are SQL keywords: the columns say what they are instead.
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# === CLAIM ===
@dataclass(frozen=True, slots=True)
class Claim:
    """An event about to be applied, as its inbox row records it."""

    event_id: uuid.UUID
    topic: str
    event_type: str
    partition: int
    offset: int


# Any number of events in one statement, the columns as arrays: SQLAlchemy compiles it once
# and asyncpg prepares it once per connection (a VALUES list was compiled again per batch).
CLAIM_EVENTS = sa.text(
    f"INSERT INTO {INBOX_TABLE} (event_id, topic, event_type, kafka_partition, kafka_offset) "
    "SELECT * FROM unnest(CAST(:event_ids AS uuid[]), CAST(:topics AS text[]), "
    "CAST(:event_types AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[])) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
).columns(event_id=PG_UUID(as_uuid=True))


async def claim_events(session: AsyncSession, claims: Sequence[Claim]) -> set[uuid.UUID]:
    """
    Record ``claims`` in the inbox within the session's transaction; returns the ids that were
    not there yet (the events to apply). The others were applied before: duplicates.
    """
    result = await session.execute(
        CLAIM_EVENTS,
        {
            "event_ids": [claim.event_id for claim in claims],
            "topics": [claim.topic for claim in claims],
            "event_types": [claim.event_type for claim in claims],
            "partitions": [claim.partition for claim in claims],
            "offsets": [claim.offset for claim in claims],
        },
    )
    return set(result.scalars())


# === MIGRATION HELPERS ===
def create_inbox_table_v1(op: Any) -> None:
    """Create ``inbox_events`` (version 1) from an Alembic migration's ``upgrade()``."""
    op.create_table(
        INBOX_TABLE,
        sa.Column("event_id", PG_UUID(as_uuid=True), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_inbox_events")),
    )
    op.create_index(
        op.f("ix_inbox_events_processed_at"), INBOX_TABLE, ["processed_at"], unique=False
    )


def drop_inbox_table_v1(op: Any) -> None:
    """Drop ``inbox_events`` (version 1) from an Alembic migration's ``downgrade()``."""
    op.drop_index(op.f("ix_inbox_events_processed_at"), table_name=INBOX_TABLE)
    op.drop_table(INBOX_TABLE)


# === RETENTION ===
async def purge_inbox(
    db: Database, older_than_days: int, batch_size: int = PURGE_BATCH_SIZE
) -> int:
    """
    Delete inbox rows processed more than ``older_than_days`` days ago, in batches of
    ``batch_size`` rows (one short transaction each). Returns how many rows were deleted.

    The retention must be longer than any redelivery the service may see (topic retention,
    an offset reset): an event whose row was purged would be applied again.
    """
    if older_than_days <= 0:
        raise ValueError("older_than_days must be at least 1")
    cutoff = func.now() - func.make_interval(0, 0, 0, older_than_days)
    total = 0
    while True:
        oldest = (
            sa.select(InboxEvent.event_id)
            .where(InboxEvent.processed_at < cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        async with db.transaction() as session:
            result = await session.execute(
                sa.delete(InboxEvent)
                .where(InboxEvent.event_id.in_(oldest))
                .returning(InboxEvent.event_id)
            )
            deleted = len(result.all())
        total += deleted
        if deleted < batch_size:
            break
    if total:
        logger.info("Inbox cleanup deleted %d events older than %d days", total, older_than_days)
    return total
