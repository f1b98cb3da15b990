"""
================================================================
FILE: orders.py
PATH: /services/lkms102-orders/app/data/orders.py
DESCRIPTION: Orders' one view type (OrderView, OrderLineView) and the plain-SQL hot reads
VERSION: v1.1.0
UPDATED: 2026-12-02 13:40:00
================================================================

Every read of an order returns one type, :class:`OrderView` (a frozen dataclass with the
columns' Python types, its lines as :class:`OrderLineView`), for REST, gRPC and the events
alike, whatever produced it: a read (plain SQL on asyncpg through ``Database.fetch_row`` /
``fetch_rows``), a create (``INSERT … RETURNING`` the same columns) or a change (the ORM
object, :meth:`OrderView.of`). The columns are named once (``ORDER_COLUMNS``, ``LINE_COLUMNS``)
and each constructor reads them by position, so no caller touches a row's ``Any`` attributes.
"""

# === IMPORTS ===
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.models.contact import ContactReadModel
from app.models.order import Order, OrderLine
from app.services.order_status import OrderStatus
from lkern_common.database import Database

# === COLUMNS ===
# The columns of a view, in the order OrderView.from_row reads them. A read takes the contact's
# current name and email from the read model (else the order's snapshot) in their place.
ORDER_COLUMNS = (
    "id",
    "number",
    "status",
    "currency",
    "total",
    "notes",
    "contact_id",
    "contact_name",
    "contact_email",
    "created_at",
    "updated_at",
    "version",
    "created_by",
    "updated_by",
    "status_changed_by",
    "status_changed_at",
)
LINE_COLUMNS = ("description", "quantity", "unit_price", "line_total")
# What a read selects for the contact's name and email (the read model's, else the snapshot).
_CURRENT_CONTACT = {
    "contact_name": "coalesce(c.name, o.contact_name)",
    "contact_email": "coalesce(c.email, o.contact_email)",
}


# === VIEW ===
@dataclass(frozen=True, slots=True)
class OrderLineView:
    """One line of an order as stored (money as Decimal at the columns' scale)."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    line_total: Decimal

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "OrderLineView":
        """A line of a row whose first columns are LINE_COLUMNS, in that order."""
        description, quantity, unit_price, line_total = row[:4]
        return cls(description, quantity, unit_price, line_total)

    @classmethod
    def of(cls, line: OrderLine) -> "OrderLineView":
        """The view of an ORM line."""
        return cls(line.description, line.quantity, line.unit_price, line.line_total)


@dataclass(frozen=True, slots=True)
class OrderView:
    """
    An order with its lines and its contact's current name and email (the read model's, else
    the snapshot taken when the order was created): what every read and change returns.
    """

    id: int
    number: str
    status: OrderStatus
    currency: str
    lines: tuple[OrderLineView, ...]
    total: Decimal
    notes: str | None
    contact_id: int
    contact_name: str
    contact_email: str
    created_at: datetime
    updated_at: datetime | None
    version: int
    created_by: str | None
    updated_by: str | None
    status_changed_by: str | None
    status_changed_at: datetime | None

    @classmethod
    def from_row(cls, row: Sequence[Any], lines: Sequence[OrderLineView]) -> "OrderView":
        """The view of a row whose first columns are ORDER_COLUMNS, in that order."""
        (id_, number, status, currency, total, notes, contact_id, contact_name, contact_email,
         created_at, updated_at, version, created_by, updated_by, status_changed_by,
         status_changed_at) = row[:16]  # fmt: skip
        return cls(
            id=id_,
            number=number,
            status=OrderStatus(status),
            currency=currency,
            lines=tuple(lines),
            total=total,
            notes=notes,
            contact_id=contact_id,
            contact_name=contact_name,
            contact_email=contact_email,
            created_at=created_at,
            updated_at=updated_at,
            version=version,
            created_by=created_by,
            updated_by=updated_by,
            status_changed_by=status_changed_by,
            status_changed_at=status_changed_at,
        )

    @classmethod
    def of(cls, order: Order, contact: ContactReadModel | None) -> "OrderView":
        """The view of an ORM order (lines loaded) and its contact in the read model."""
        return cls(
            id=order.id,
            number=order.number,
            status=OrderStatus(order.status),
            currency=order.currency,
            lines=tuple(OrderLineView.of(line) for line in order.lines),
            total=order.total,
            notes=order.notes,
            contact_id=order.contact_id,
            contact_name=contact.name if contact is not None else order.contact_name,
            contact_email=contact.email if contact is not None else order.contact_email,
            created_at=order.created_at,
            updated_at=order.updated_at,
            version=order.version,
            created_by=order.created_by,
            updated_by=order.updated_by,
            status_changed_by=order.status_changed_by,
            status_changed_at=order.status_changed_at,
        )


# === READS ===
# Plain SQL, prepared once per connection by asyncpg. One order comes with its contact and
# lines in one statement; a page with its contacts in one, then the lines of all of them in one
# more. $1 is the order id; a page takes $1 limit, $2 skip, then its filters.
_COLUMNS_SQL = ", ".join(_CURRENT_CONTACT.get(name, f"o.{name}") for name in ORDER_COLUMNS)
_SELECT_ORDERS = (
    f"SELECT {_COLUMNS_SQL} FROM orders o LEFT JOIN contacts_read_model c ON c.id = o.contact_id"
)
# One order: the order and its contact on every row, a line per row (one round trip).
ORDER_WITH_LINES = (
    f"SELECT {_COLUMNS_SQL}, {', '.join(f'l.{name}' for name in LINE_COLUMNS)}, l.order_id "
    "FROM orders o LEFT JOIN contacts_read_model c ON c.id = o.contact_id "
    "LEFT JOIN order_lines l ON l.order_id = o.id WHERE o.id = $1 ORDER BY l.position"
)
LINES_OF_ORDERS = (
    f"SELECT {', '.join(LINE_COLUMNS)}, order_id FROM order_lines "
    "WHERE order_id = ANY($1::int[]) ORDER BY order_id, position"
)


def _filters_sql(by_contact: bool, by_status: bool, first: int) -> str:
    """The WHERE clause of a list: the contact id, then the status, from parameter ``first``."""
    filters = []
    if by_contact:
        filters.append(f"o.contact_id = ${first}")
    if by_status:
        filters.append(f"o.status = ${first + int(by_contact)}")
    return f" WHERE {' AND '.join(filters)}" if filters else ""


PAGES = {
    (by_contact, by_status): _SELECT_ORDERS
    + _filters_sql(by_contact, by_status, 3)
    + " ORDER BY o.id LIMIT $1 OFFSET $2"
    for by_contact in (False, True)
    for by_status in (False, True)
}
COUNTS = {
    (by_contact, by_status): "SELECT count(*) FROM orders o"
    + _filters_sql(by_contact, by_status, 1)
    for by_contact in (False, True)
    for by_status in (False, True)
}


def list_filters(contact_id: int | None, status: OrderStatus | None) -> list[Any]:
    """The filters' arguments, in the order PAGES and COUNTS number them."""
    arguments: list[Any] = []
    if contact_id is not None:
        arguments.append(contact_id)
    if status is not None:
        arguments.append(status.value)
    return arguments


def views_with_lines(
    orders: Sequence[Sequence[Any]], lines: Sequence[Sequence[Any]]
) -> list[OrderView]:
    """
    The views of ``orders`` (rows of ORDER_COLUMNS) with their ``lines`` (rows of
    LINE_COLUMNS then order_id, ordered by order and position).
    """
    by_order: dict[int, list[OrderLineView]] = {}
    for line in lines:
        by_order.setdefault(line[4], []).append(OrderLineView.from_row(line))
    return [OrderView.from_row(order, by_order.get(order[0], ())) for order in orders]


async def _with_lines(db: Database, orders: Sequence[Sequence[Any]]) -> list[OrderView]:
    """The views of ``orders`` with their lines (one statement for all of them)."""
    if not orders:
        return []
    lines = await db.fetch_rows(LINES_OF_ORDERS, [order[0] for order in orders])
    return views_with_lines(orders, lines)


async def fetch_order(db: Database, order_id: int) -> OrderView | None:
    """The order with its lines and contact, or None (one statement)."""
    rows = await db.fetch_rows(ORDER_WITH_LINES, order_id)
    if not rows:
        return None
    lines = [row[len(ORDER_COLUMNS) :] for row in rows]
    return views_with_lines(rows[:1], [line for line in lines if line[-1] is not None])[0]


async def fetch_page(
    db: Database, skip: int, limit: int, contact_id: int | None, status: OrderStatus | None
) -> list[OrderView]:
    """A page of orders by id with their lines and contacts (two statements)."""
    page = PAGES[(contact_id is not None, status is not None)]
    rows = await db.fetch_rows(page, limit, skip, *list_filters(contact_id, status))
    return await _with_lines(db, rows)


async def count_orders(db: Database, contact_id: int | None, status: OrderStatus | None) -> int:
    """How many orders match the filters."""
    variant = (contact_id is not None, status is not None)
    row = await db.fetch_row(COUNTS[variant], *list_filters(contact_id, status))
    return 0 if row is None else int(row[0])


# === CONTACT STATE ===
READ_MODEL_STATE = "SELECT version, is_active, deleted FROM contacts_read_model WHERE id = $1"


@dataclass(frozen=True, slots=True)
class ReadModelState:
    """What the read model says of a contact: its version, and whether it may take orders."""

    version: int
    is_active: bool
    deleted: bool

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "ReadModelState":
        version, is_active, deleted = row[:3]
        return cls(version, is_active, deleted)

    @property
    def usable(self) -> bool:
        return self.is_active and not self.deleted


async def fetch_read_model_state(db: Database, contact_id: int) -> ReadModelState | None:
    """What the read model says of the contact, or None when it has no row."""
    row = await db.fetch_row(READ_MODEL_STATE, contact_id)
    return None if row is None else ReadModelState.from_row(row)
