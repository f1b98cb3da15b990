"""create the transactional outbox (outbox_events) and its NOTIFY trigger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:00:00
"""

# === IMPORTS ===
from collections.abc import Sequence

from alembic import op

from lkern_common.outbox.model import create_outbox_table_v1, drop_outbox_table_v1

# === REVISION IDENTIFIERS ===
revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Create outbox_events (version 1 of the shared outbox table) for contact events."""
    create_outbox_table_v1(op)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop outbox_events and its trigger (unsent events in it are lost)."""
    drop_outbox_table_v1(op)
