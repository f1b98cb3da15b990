"""create orders, order lines, contacts read model, inbox and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:30:00
"""

# === IMPORTS ===
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lkern_common.kafka.inbox import create_inbox_table_v1, drop_inbox_table_v1
from lkern_common.outbox.model import create_outbox_table_v1, drop_outbox_table_v1

# === REVISION IDENTIFIERS ===
revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Create the order tables, the order number sequence, the read model, inbox and outbox."""
    op.execute(sa.schema.CreateSequence(sa.Sequence("order_number_seq", start=1)))
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False, comment="Order id"),
        sa.Column(
            "number",
            sa.String(32),
            nullable=False,
            comment="Human-readable order number ORD-YYYY-NNNNNN",
        ),
        sa.Column(
            "contact_id",
            sa.Integer(),
            nullable=False,
            comment="Contact (lkms101) the order is for",
        ),
        sa.Column(
            "contact_name",
            sa.String(255),
            nullable=False,
            comment="Contact name when the order was created",
        ),
        sa.Column(
            "contact_email",
            sa.String(255),
            nullable=False,
            comment="Contact email when the order was created",
        ),
        sa.Column(
            "status",
            sa.String(16),
            server_default=sa.text("'draft'"),
            nullable=False,
            comment="draft, confirmed, fulfilled or cancelled",
        ),
        sa.Column("currency", sa.String(3), nullable=False, comment="ISO 4217 currency code"),
        sa.Column("total", sa.Numeric(18, 2), nullable=False, comment="Sum of the line totals"),
        sa.Column("notes", sa.Text(), nullable=True, comment="Free-text notes"),
        sa.Column(
            "version",
            sa.Integer(),
            server_default=sa.text("1"),
            nullable=False,
            comment="Version of the order: 1 when created, +1 on every change",
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
        sa.CheckConstraint(
            "status IN ('draft', 'confirmed', 'fulfilled', 'cancelled')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_orders_currency")),
        sa.CheckConstraint("total >= 0", name=op.f("ck_orders_total")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_orders_number")),
        comment="Orders: what a contact ordered, its status and total",
    )
    op.create_index("ix_orders_contact_id", "orders", ["contact_id"])
    op.create_index("ix_orders_status", "orders", ["status"])

    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), nullable=False, comment="Order line id"),
        sa.Column(
            "order_id",
            sa.Integer(),
            nullable=False,
            comment="The order this line belongs to",
        ),
        sa.Column(
            "position",
            sa.Integer(),
            nullable=False,
            comment="Position of the line in the order, from 1",
        ),
        sa.Column("description", sa.String(500), nullable=False, comment="What is ordered"),
        sa.Column("quantity", sa.Numeric(12, 3), nullable=False, comment="Quantity (> 0)"),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False, comment="Unit price (>= 0)"),
        sa.Column(
            "line_total",
            sa.Numeric(18, 2),
            nullable=False,
            comment="quantity x unit_price, rounded half up to 2 places",
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_lines_quantity")),
        sa.CheckConstraint("unit_price >= 0", name=op.f("ck_order_lines_unit_price")),
        sa.CheckConstraint("line_total >= 0", name=op.f("ck_order_lines_line_total")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_lines_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
        sa.UniqueConstraint("order_id", "position", name=op.f("uq_order_lines_order_id_position")),
        comment="Lines of orders",
    )

    op.create_table(
        "contacts_read_model",
        sa.Column(
            "id",
            sa.Integer(),
            autoincrement=False,
            nullable=False,
            comment="Contact id in lkms101-contacts",
        ),
        sa.Column("name", sa.String(255), nullable=False, comment="Contact name"),
        sa.Column("email", sa.String(255), nullable=False, comment="Contact email"),
        sa.Column(
            "is_active", sa.Boolean(), nullable=False, comment="Whether the contact is active"
        ),
        sa.Column(
            "deleted",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="The contact was deleted in lkms101-contacts",
        ),
        sa.Column(
            "version", sa.Integer(), nullable=False, comment="Contact version this row reflects"
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
            comment="When this row last changed",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts_read_model")),
        comment="Read model of lkms101 contacts, fed by contact events",
    )

    create_inbox_table_v1(op)
    create_outbox_table_v1(op)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop everything upgrade() created."""
    drop_outbox_table_v1(op)
    drop_inbox_table_v1(op)
    op.drop_table("contacts_read_model")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_index("ix_orders_contact_id", table_name="orders")
    op.drop_table("orders")
    op.execute(sa.schema.DropSequence(sa.Sequence("order_number_seq")))
