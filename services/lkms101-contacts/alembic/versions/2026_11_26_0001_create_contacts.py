"""create contacts table

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:30:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# === REVISION IDENTIFIERS ===
revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Create contacts table, its case-insensitive unique email index and search indexes."""
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False, comment="Contact id"),
        sa.Column("name", sa.String(255), nullable=False, comment="Contact full name"),
        sa.Column("email", sa.String(255), nullable=False, comment="Contact email address"),
        sa.Column("phone", sa.String(50), nullable=True, comment="Contact phone number"),
        sa.Column(
            "is_active",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="Whether contact is active",
        ),
        sa.Column(
            "version",
            sa.Integer(),
            server_default=sa.text("1"),
            nullable=False,
            comment="Version of the contact: 1 when created, +1 on every change",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="Timestamp when created",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Timestamp when last updated",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        comment="Contacts: people and organizations the company deals with",
    )
    op.create_index("ix_contacts_name", "contacts", ["name"])
    op.create_index("ix_contacts_email", "contacts", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "ix_contacts_name_trgm",
        "contacts",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_contacts_email_trgm",
        "contacts",
        ["email"],
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop contacts table (the pg_trgm extension stays: other objects may use it)."""
    op.drop_index("ix_contacts_email_trgm", table_name="contacts")
    op.drop_index("ix_contacts_name_trgm", table_name="contacts")
    op.drop_index("ix_contacts_email", table_name="contacts")
    op.drop_index("ix_contacts_name", table_name="contacts")
    op.drop_table("contacts")
