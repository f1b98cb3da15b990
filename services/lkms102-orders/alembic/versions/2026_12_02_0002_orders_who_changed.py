"""orders: who created, last changed and last changed the status of each order

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:15:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# === REVISION IDENTIFIERS ===
revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# === COLUMNS ===
COLUMNS = (
    ("created_by", sa.String(255), "Subject (token sub) that created the order"),
    ("updated_by", sa.String(255), "Subject (token sub) of the last change"),
    ("status_changed_by", sa.String(255), "Subject (token sub) of the last status change"),
    ("status_changed_at", sa.DateTime(timezone=True), "When the status last changed"),
)


# === UPGRADE ===
def upgrade() -> None:
    """Add who/when columns (NULL for orders made before authentication)."""
    for name, column_type, comment in COLUMNS:
        op.add_column("orders", sa.Column(name, column_type, nullable=True, comment=comment))


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop the who/when columns (who made the changes is lost)."""
    for name, _type, _comment in reversed(COLUMNS):
        op.drop_column("orders", name)
