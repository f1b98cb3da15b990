"""
================================================================
FILE: order.py
PATH: /services/lkms102-orders/app/models/order.py
DESCRIPTION: SQLAlchemy models for the orders and order_lines tables
VERSION: v1.1.0
UPDATED: 2026-12-02 03:15:00
================================================================
"""

# === IMPORTS ===
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    FetchedValue,
    ForeignKey,
    Integer,
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base
from app.services.money import (
    AMOUNT_DIGITS,
    PRICE_DIGITS,
    PRICE_PLACES,
    QUANTITY_DIGITS,
    QUANTITY_PLACES,
)
from app.services.order_status import OrderStatus

# === CONSTANTS ===
# Numbers ORD-YYYY-NNNNNN come from this sequence: nextval() never hands out a value twice, so
# concurrent creates cannot collide (a rolled-back create leaves a gap, as sequences do).
ORDER_NUMBER_SEQUENCE = Sequence("order_number_seq", start=1, metadata=Base.metadata)
STATUS_VALUES = ", ".join(f"'{status.value}'" for status in OrderStatus)


# === MODEL: ORDER ===
class Order(Base):
    """
    A customer order.

    Attributes:
        id: Primary key
        number: Human-readable unique number ORD-YYYY-NNNNNN, assigned by the service
        contact_id: The contact (lkms101) the order is for
        contact_name, contact_email: The contact's name and email when the order was created
            (snapshot; responses show the read model's current values when it knows them)
        status: draft, confirmed, fulfilled or cancelled (state machine in services)
        currency: ISO 4217 code
        total: Sum of the line totals (computed by the service)
        notes: Free text (optional)
        version: 1 when created, +1 on every change
        created_by, updated_by: Who created / last changed it (the access token's subject)
        status_changed_by, status_changed_at: Who last changed its status, and when
        created_at, updated_at: Timestamps
    """

    __tablename__ = "orders"

    # === PRIMARY KEY ===
    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="Order id")

    # === FIELDS ===
    number: Mapped[str] = mapped_column(
        String(32), nullable=False, comment="Human-readable order number ORD-YYYY-NNNNNN"
    )
    contact_id: Mapped[int] = mapped_column(
        Integer, nullable=False, index=True, comment="Contact (lkms101) the order is for"
    )
    contact_name: Mapped[str] = mapped_column(
        String(255), nullable=False, comment="Contact name when the order was created"
    )
    contact_email: Mapped[str] = mapped_column(
        String(255), nullable=False, comment="Contact email when the order was created"
    )
    status: Mapped[OrderStatus] = mapped_column(
        String(16),
        nullable=False,
        index=True,
        default=OrderStatus.DRAFT,
        server_default=text("'draft'"),
        comment="draft, confirmed, fulfilled or cancelled",
    )
    currency: Mapped[str] = mapped_column(
        String(3), nullable=False, comment="ISO 4217 currency code"
    )
    total: Mapped[Decimal] = mapped_column(
        Numeric(AMOUNT_DIGITS, PRICE_PLACES),
        nullable=False,
        comment="Sum of the line totals",
    )
    notes: Mapped[str | None] = mapped_column(Text, nullable=True, comment="Free-text notes")
    version: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        server_default=text("1"),
        comment="Version of the order: 1 when created, +1 on every change",
    )

    # === WHO ===
    # The subject (access token `sub`) of the request that made the change; NULL for rows
    # made before authentication and until the first change / status change.
    created_by: Mapped[str | None] = mapped_column(
        String(255), nullable=True, comment="Subject (token sub) that created the order"
    )
    updated_by: Mapped[str | None] = mapped_column(
        String(255), nullable=True, comment="Subject (token sub) of the last change"
    )
    status_changed_by: Mapped[str | None] = mapped_column(
        String(255), nullable=True, comment="Subject (token sub) of the last status change"
    )
    status_changed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        nullable=True,
        # Set to now() by a status change; FetchedValue makes the UPDATE return it (RETURNING)
        # instead of leaving an expired attribute that would need a lazy load.
        server_onupdate=FetchedValue(),
        comment="When the status last changed",
    )

    # === TIMESTAMPS ===
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        nullable=False,
        comment="Timestamp when created",
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        # NULL until the first change (no database default). FetchedValue makes the INSERT
        # return it with RETURNING; without it the ORM reads it back with an extra SELECT.
        server_default=FetchedValue(),
        onupdate=func.now(),
        nullable=True,
        comment="Timestamp when last updated",
    )

    # === RELATIONSHIPS ===
    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order",
        order_by="OrderLine.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )

    # === CONSTRAINTS ===
    __table_args__ = (
        UniqueConstraint("number"),
        CheckConstraint(f"status IN ({STATUS_VALUES})", name="status"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        CheckConstraint("total >= 0", name="total"),
        {"comment": "Orders: what a contact ordered, its status and total"},
    )

    # Optimistic concurrency and version counting (as contacts), RETURNING for server values.
    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}

    def __repr__(self) -> str:
        return f"<Order(id={self.id}, number='{self.number}', status='{self.status}')>"


# === MODEL: ORDER LINE ===
class OrderLine(Base):
    """
    One line of an order.

    Attributes:
        id: Primary key
        order_id: The order
        position: 1, 2, 3… in the order the lines were sent
        description: What is ordered
        quantity: How many (> 0, up to 3 decimal places)
        unit_price: Price of one (≥ 0, 2 decimal places)
        line_total: quantity × unit_price rounded half up to 2 places
    """

    __tablename__ = "order_lines"

    # === PRIMARY KEY ===
    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="Order line id")

    # === FIELDS ===
    order_id: Mapped[int] = mapped_column(
        Integer,
        ForeignKey("orders.id", ondelete="CASCADE"),
        nullable=False,
        comment="The order this line belongs to",
    )
    position: Mapped[int] = mapped_column(
        Integer, nullable=False, comment="Position of the line in the order, from 1"
    )
    description: Mapped[str] = mapped_column(String(500), nullable=False, comment="What is ordered")
    quantity: Mapped[Decimal] = mapped_column(
        Numeric(QUANTITY_DIGITS, QUANTITY_PLACES), nullable=False, comment="Quantity (> 0)"
    )
    unit_price: Mapped[Decimal] = mapped_column(
        Numeric(PRICE_DIGITS, PRICE_PLACES), nullable=False, comment="Unit price (>= 0)"
    )
    line_total: Mapped[Decimal] = mapped_column(
        Numeric(AMOUNT_DIGITS, PRICE_PLACES),
        nullable=False,
        comment="quantity x unit_price, rounded half up to 2 places",
    )

    # === RELATIONSHIPS ===
    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")

    # === CONSTRAINTS ===
    __table_args__ = (
        # Also serves as the index on order_id (its first column).
        UniqueConstraint("order_id", "position"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_price >= 0", name="unit_price"),
        CheckConstraint("line_total >= 0", name="line_total"),
        {"comment": "Lines of orders"},
    )

    def __repr__(self) -> str:
        return f"<OrderLine(order_id={self.order_id}, position={self.position})>"
