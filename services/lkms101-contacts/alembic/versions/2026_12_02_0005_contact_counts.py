"""contact_counts: an exact count of contacts per status, kept by triggers (X-Total-Count)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:10:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.contact_count import COUNT_TRIGGERS_SQL, DROP_COUNT_TRIGGERS_SQL

# === REVISION IDENTIFIERS ===
revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """The counts table, filled from the contacts there are, and the triggers that keep it."""
    op.create_table(
        "contact_counts",
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("is_active", "slot", name=op.f("pk_contact_counts")),
        comment="Contacts per status, in slots summed on read (kept by triggers on contacts)",
    )
    # Counted and the triggers created in one transaction, with contacts locked meanwhile: no
    # write can fall between the count and the first trigger.
    op.execute("LOCK TABLE contacts IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO contact_counts (is_active, slot, n) "
        "SELECT is_active, 0, count(*) FROM contacts GROUP BY is_active"
    )
    for statement in COUNT_TRIGGERS_SQL:
        op.execute(statement)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop the triggers and the counts table."""
    for statement in DROP_COUNT_TRIGGERS_SQL:
        op.execute(statement)
    op.drop_table("contact_counts")
