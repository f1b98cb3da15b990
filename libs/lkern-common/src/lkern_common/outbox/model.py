"""
================================================================
FILE: model.py
PATH: /libs/lkern-common/src/lkern_common/outbox/model.py
DESCRIPTION: Outbox table: model, NOTIFY trigger and the versioned migration helpers
VERSION: v1.0.0
UPDATED: 2026-11-26 15:00:00
================================================================

The outbox belongs to the publishing service's database and is created by that service's
Alembic migration, which calls the versioned helpers here::

    from lkern_common.outbox.model import create_outbox_table_v1, drop_outbox_table_v1

    def upgrade() -> None:
        create_outbox_table_v1(op)

    def downgrade() -> None:
        drop_outbox_table_v1(op)

The service imports this module (``app/models/__init__.py``) so that ``OutboxEvent`` is in its
metadata and ``alembic check`` agrees with the migration. A later change of the table gets a
``..._v2`` helper; a ``_v1`` helper never changes, so old migrations keep meaning what they did.

An ``AFTER INSERT`` trigger (one per statement) runs ``pg_notify('lkern_outbox', …)``; PostgreSQL
delivers the notification when the writing transaction commits (never when it rolls back), and
that wakes the relay at once.
"""

# === IMPORTS ===
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, BigInteger, DateTime, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from lkern_common.database import Base

# === CONSTANTS ===
OUTBOX_TABLE = "outbox_events"
# LISTEN/NOTIFY channel the trigger notifies and the relay listens on.
NOTIFY_CHANNEL = "lkern_outbox"
NOTIFY_FUNCTION = "lkern_outbox_notify"
NOTIFY_TRIGGER = "trg_outbox_events_notify"
PENDING_INDEX = "ix_outbox_events_pending"
SENT_INDEX = "ix_outbox_events_sent_at"
TABLE_COMMENT = "Transactional outbox: events written with the change, published by the relay"


# === MODEL ===
class OutboxEvent(Base):
    """
    One event waiting to be published (``sent_at`` is null) or already published. ``id``
    orders publication; for one aggregate (one Kafka key) it is also commit order, because the
    writer locks the aggregate's row before it adds the event.
    """

    __tablename__ = OUTBOX_TABLE
    __table_args__ = (
        # The relay's "next batch" and the backlog query read only unsent rows, in id order.
        Index(PENDING_INDEX, "id", postgresql_where=text("sent_at IS NULL")),
        # The retention cleanup finds expired sent rows.
        Index(SENT_INDEX, "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
        {"comment": TABLE_COMMENT},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), unique=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(Text, nullable=True)
    # `json`, not `jsonb`: the relay publishes exactly the text that was written.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def __repr__(self) -> str:
        return f"<OutboxEvent(id={self.id}, topic='{self.topic}', key='{self.key}')>"


# === MIGRATION HELPERS ===
def create_outbox_table_v1(op: Any) -> None:
    """Create ``outbox_events`` (version 1) and its NOTIFY trigger from a migration's upgrade."""
    op.create_table(
        OUTBOX_TABLE,
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", PG_UUID(as_uuid=True), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_events_event_id")),
        comment=TABLE_COMMENT,
    )
    op.create_index(
        PENDING_INDEX, OUTBOX_TABLE, ["id"], postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_index(
        SENT_INDEX, OUTBOX_TABLE, ["sent_at"], postgresql_where=sa.text("sent_at IS NOT NULL")
    )
    op.execute(
        f"""
        CREATE FUNCTION {NOTIFY_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {NOTIFY_TRIGGER} AFTER INSERT ON {OUTBOX_TABLE} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {NOTIFY_FUNCTION}()"
    )


def drop_outbox_table_v1(op: Any) -> None:
    """Drop ``outbox_events`` (version 1) and its trigger from a migration's downgrade."""
    op.execute(f"DROP TRIGGER IF EXISTS {NOTIFY_TRIGGER} ON {OUTBOX_TABLE}")
    op.execute(f"DROP FUNCTION IF EXISTS {NOTIFY_FUNCTION}()")
    op.drop_index(SENT_INDEX, table_name=OUTBOX_TABLE)
    op.drop_index(PENDING_INDEX, table_name=OUTBOX_TABLE)
    op.drop_table(OUTBOX_TABLE)
