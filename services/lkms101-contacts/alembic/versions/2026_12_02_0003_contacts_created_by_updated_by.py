"""contacts: who created and who last changed each contact (created_by, updated_by)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:10:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# === REVISION IDENTIFIERS ===
revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Add created_by / updated_by (NULL for contacts made before authentication)."""
    op.add_column(
        "contacts",
        sa.Column(
            "created_by",
            sa.String(255),
            nullable=True,
            comment="Subject (token sub) that created the contact",
        ),
    )
    op.add_column(
        "contacts",
        sa.Column(
            "updated_by",
            sa.String(255),
            nullable=True,
            comment="Subject (token sub) of the last change",
        ),
    )


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop created_by / updated_by (who made the changes is lost)."""
    op.drop_column("contacts", "updated_by")
    op.drop_column("contacts", "created_by")
