"""create idempotency_keys (stored answers of POSTs with an Idempotency-Key)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:30:00
"""

# === IMPORTS ===
from collections.abc import Sequence

from alembic import op

from lkern_common.idempotency import create_idempotency_table_v1, drop_idempotency_table_v1

# === REVISION IDENTIFIERS ===
revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Create idempotency_keys (version 1 of the shared table) for the orders API's POSTs."""
    create_idempotency_table_v1(op)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop idempotency_keys (stored answers are lost: retries then run again)."""
    drop_idempotency_table_v1(op)
