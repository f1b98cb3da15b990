"""
================================================================
FILE: orders_service.py
PATH: /services/lkms102-orders/app/services/orders_service.py
DESCRIPTION: Orders logic: reads (OrdersReader); the contact check asked of contacts before a
             transaction (check_contact); create, edit, status, delete (OrdersService)
VERSION: v1.5.0
UPDATED: 2026-12-02 07:05:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.data.orders import (
    LINE_COLUMNS,
    ORDER_COLUMNS,
    OrderLineView,
    OrderView,
    count_orders,
    fetch_order,
    fetch_page,
    fetch_read_model_state,
)
from app.models.contact import ContactReadModel
from app.models.order import ORDER_NUMBER_SEQUENCE, Order, OrderLine
from app.outbox_events import write_order_event
from app.schemas.order import OrderCreate, OrderLineIn, OrderUpdate
from app.services import contacts_read_model
from app.services.contact_directory import ContactDirectory, ContactRejectedError
from app.services.contacts_read_model import ContactState
from app.services.money import order_total
from app.services.order_status import OrderNotEditableError, OrderStatus, check_transition
from lkern_common.contracts.orders import (
    OrderCreated,
    OrderDeleted,
    OrderStatusChanged,
    OrderUpdated,
)
from lkern_common.database import Database
from lkern_common.errors import NotFoundError
from lkern_common.request_context import get_subject
from lkern_common.web.conditional import IfMatch

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
NUMBER_PREFIX = "ORD"
NUMBER_DIGITS = 6


# === ERRORS ===
class OrderNotFoundError(NotFoundError):
    """No order with this id."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"Order with id {order_id} not found")


class ContactCheckMissingError(RuntimeError):
    """Confirming ran without contacts' check of the order's contact (a wiring bug: 500)."""

    def __init__(self, order_id: int) -> None:
        super().__init__(f"Confirming order {order_id} needs a ContactCheck of its contact")


# === HELPERS ===
def format_order_number(sequence_value: int, year: int) -> str:
    """ORD-YYYY-NNNNNN: the year of creation (UTC) and the sequence value, at least 6 digits."""
    return f"{NUMBER_PREFIX}-{year:04d}-{sequence_value:0{NUMBER_DIGITS}d}"


def _line_values(lines: Sequence[OrderLineIn]) -> list[dict[str, Any]]:
    """The stored fields of each line: position from 1, the total computed by the service."""
    return [
        {
            "position": position,
            "description": line.description,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "line_total": line.line_total,
        }
        for position, line in enumerate(lines, start=1)
    ]


def _build_lines(lines: Sequence[OrderLineIn]) -> list[OrderLine]:
    return [OrderLine(**values) for values in _line_values(lines)]


# === STATEMENTS ===
ORDERS = cast(Table, Order.__table__)
LINES = cast(Table, OrderLine.__table__)
# A new order is Core statements: the next number, INSERT … RETURNING for the order, one
# INSERT … RETURNING for all its lines (ORM objects and their unit-of-work flush cost ~1 ms more
# per create); both return the view's columns (app.data.orders), so the rows become the same
# OrderView a read returns. Changes of existing orders use the ORM (lock, compare, flush).
NEXT_NUMBER = select(ORDER_NUMBER_SEQUENCE.next_value(), func.now())
INSERT_ORDER = insert(ORDERS).returning(*(ORDERS.c[name] for name in ORDER_COLUMNS))
INSERT_LINES = insert(LINES).returning(
    *(LINES.c[name] for name in LINE_COLUMNS), sort_by_parameter_order=True
)


# === READS ===
# Reads run plain SQL straight on the driver (app.data.orders: Database.fetch_row / fetch_rows,
# prepared once per connection by asyncpg) and return typed views: no ORM objects and no
# SQLAlchemy execution layer for an order that is only shown (docs/performance.md). Two
# statements per page (orders with contacts, then their lines), each in autocommit, and a
# count only when the page does not tell it.


class OrdersReader:
    """Orders reads: statements in autocommit, no transaction, no ORM objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_order_view(self, order_id: int) -> OrderView:
        """The order with its contact, or OrderNotFoundError."""
        view = await fetch_order(self.db, order_id)
        if view is None:
            raise OrderNotFoundError(order_id)
        return view

    async def list_orders(
        self,
        *,
        skip: int,
        limit: int,
        contact_id: int | None = None,
        status: OrderStatus | None = None,
    ) -> tuple[list[OrderView], int]:
        """
        A page of orders ordered by id with their contacts (one query for orders and contacts,
        one for their lines), and the number of all orders that match.
        """
        views = await fetch_page(self.db, skip, limit, contact_id, status)
        if skip == 0 and len(views) < limit:
            total = len(views)  # the whole result fits in this page: no count query needed
        else:
            total = await count_orders(self.db, contact_id, status)
        return views, total

    async def get_orders_by_contact(
        self, contact_id: int, *, skip: int = 0, limit: int = 100
    ) -> tuple[list[OrderView], int]:
        """The contact's orders (oldest first) and how many there are."""
        return await self.list_orders(skip=skip, limit=limit, contact_id=contact_id)


# === CONTACT CHECK ===
# Contacts is asked before the order's transaction starts: no pooled connection waits for its
# answer (with contacts slow or down, waiting creates held the pool's slots and every other
# request of orders, reads included, queued behind them).
@dataclass(frozen=True)
class ContactCheck:
    """
    What contacts said about a contact, asked before the transaction: it may take orders
    (ValidateContact), and, when the read model did not show it usable, contacts' own snapshot
    (GetContact) with the read model's version at that moment (None: no row).
    """

    contact_id: int
    snapshot: ContactState | None = None
    read_model_version: int | None = None


async def check_contact(db: Database, contacts: ContactDirectory, contact_id: int) -> ContactCheck:
    """
    Ask contacts whether ``contact_id`` may take orders, outside any transaction (400 with
    contacts' reason when not, 503 when contacts cannot be asked, at once while its circuit
    breaker is open). When the read model does not know the contact yet (its event has not
    arrived) or says it is inactive or deleted, GetContact's snapshot is fetched too, for
    :meth:`OrdersService` to merge in its transaction.
    """
    await contacts.validate(contact_id)
    state = await fetch_read_model_state(db, contact_id)
    if state is not None and state.usable:
        return ContactCheck(contact_id)
    snapshot = await contacts.fetch(contact_id)
    if snapshot is None:
        raise ContactRejectedError(f"Contact with id {contact_id} not found")
    return ContactCheck(contact_id, snapshot, None if state is None else state.version)


# === SERVICE ===
class OrdersService:
    """
    Orders use cases. Works inside the caller's transaction: it flushes, never commits (the
    request, or the gRPC call, owns the transaction). Every change writes its order event to
    the outbox in that same transaction. Who makes a change is the current request's subject
    (lkern_common.request_context.get_subject: the access token's `sub`): stored as
    created_by / updated_by / status_changed_by, carried by the event as `actor`.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _lock_order(self, order_id: int, if_match: IfMatch | None = None) -> Order:
        """
        The order with its lines, its row locked until the transaction ends. ``if_match`` is
        checked under the lock, so the check is atomic with the change that follows.
        """
        statement = (
            select(Order)
            .where(Order.id == order_id)
            .options(selectinload(Order.lines))
            .with_for_update(of=Order)
            .execution_options(populate_existing=True)
        )
        order = await self.session.scalar(statement)
        if order is None:
            raise OrderNotFoundError(order_id)
        if if_match is not None:
            if_match.check(order.version)
        return order

    # --- contact checks ---
    async def _usable_contact(self, check: ContactCheck) -> ContactReadModel:
        """
        The contact of ``check`` (contacts said it may take orders), in this transaction. The
        read model must agree: contacts' snapshot, fetched when the read model did not show the
        contact usable, is merged in by version; a read model that still says inactive
        afterwards (a newer change than contacts answered) refuses the order (400). A read model
        that claims a version contacts' answer has not reached is wrong (contacts owns the
        contact): it is repaired from that answer, and the repair is logged. A row that changed
        since the check (an event arrived meanwhile) is merged by version, never overwritten.
        """
        contact_id = check.contact_id
        contact = await contacts_read_model.get_contact(self.session, contact_id)
        snapshot = check.snapshot
        if snapshot is not None and (contact is None or contact.deleted or not contact.is_active):
            if (
                contact is not None
                and contact.version == check.read_model_version
                and contact.version >= snapshot.version
            ):
                await contacts_read_model.repair_contact(self.session, snapshot, contact.version)
            else:
                await contacts_read_model.apply_contact_snapshot(self.session, snapshot)
            contact = await contacts_read_model.get_contact(self.session, contact_id)
        if contact is None or contact.deleted:
            raise ContactRejectedError(f"Contact {contact_id} has been deleted")
        if not contact.is_active:
            raise ContactRejectedError(f"Contact {contact_id} is inactive")
        return contact

    # --- create ---
    async def create_order(self, data: OrderCreate, check: ContactCheck) -> OrderView:
        """
        Create a draft order for the contact ``check`` validated (:func:`check_contact`, before
        this transaction); number and totals by the service.
        """
        contact = await self._usable_contact(check)
        connection = await self.session.connection()
        sequence_value, now = (await connection.execute(NEXT_NUMBER)).one()
        lines = _line_values(data.lines)
        new_order = {
            "number": format_order_number(sequence_value, now.astimezone(UTC).year),
            "contact_id": contact.id,
            "contact_name": contact.name,
            "contact_email": contact.email,
            "status": OrderStatus.DRAFT.value,
            "currency": data.currency,
            "total": order_total(line["line_total"] for line in lines),
            "notes": data.notes,
            "created_by": get_subject(),
        }
        order = (await connection.execute(INSERT_ORDER, new_order)).one()
        order_id: int = order[0]  # ORDER_COLUMNS start with the id
        for line in lines:
            line["order_id"] = order_id
        order_lines = (await connection.execute(INSERT_LINES, lines)).all()
        view = OrderView.from_row(order, [OrderLineView.from_row(line) for line in order_lines])
        await write_order_event(self.session, OrderCreated, view)
        logger.info("Created order %s (%s) for contact %s", view.id, view.number, contact.id)
        return view

    # --- update ---
    async def update_order(
        self, order_id: int, data: OrderUpdate, if_match: IfMatch | None = None
    ) -> OrderView:
        """
        Edit a draft's lines (all replaced) and/or notes; 409 unless the order is a draft,
        412 when ``if_match`` does not name its version.
        """
        order = await self._lock_order(order_id, if_match)
        if order.status != OrderStatus.DRAFT:
            raise OrderNotEditableError(order.number, OrderStatus(order.status), "edited")
        changes = data.model_dump(exclude_unset=True)
        changed: list[str] = []
        if "notes" in changes and order.notes != data.notes:
            order.notes = data.notes
            changed.append("notes")
        if data.lines is not None and self._replace_lines(order, data.lines):
            order.total = order_total(line.line_total for line in order.lines)
            changed.append("lines")
        if changed:
            # Changing only lines leaves the orders row untouched: touch it so that `version`
            # and `updated_at` move (the version also guards against a lost update).
            order.updated_at = func.now()
            order.updated_by = get_subject()
            await self.session.flush()
            view = await self._view(order)
            await write_order_event(self.session, OrderUpdated, view)
            logger.info("Updated order %s: %s", order.id, ", ".join(changed))
            return view
        return await self._view(order)

    def _replace_lines(self, order: Order, new_lines: Sequence[OrderLineIn]) -> bool:
        """
        Make the order's lines equal to ``new_lines`` in place (update by position, add or
        remove at the end), so that (order_id, position) stays unique at every step.
        Returns True when something changed.
        """
        changed = False
        built = _build_lines(new_lines)
        for index, line in enumerate(built):
            if index < len(order.lines):
                current = order.lines[index]
                for field in ("description", "quantity", "unit_price", "line_total"):
                    if getattr(current, field) != getattr(line, field):
                        setattr(current, field, getattr(line, field))
                        changed = True
            else:
                order.lines.append(line)
                changed = True
        if len(order.lines) > len(built):
            del order.lines[len(built) :]
            changed = True
        return changed

    # --- status ---
    async def change_status(
        self,
        order_id: int,
        target: OrderStatus,
        if_match: IfMatch | None = None,
        contact_check: ContactCheck | None = None,
    ) -> OrderView:
        """
        Move the order through the state machine (409 on an illegal transition, 412 when
        ``if_match`` does not name its version). Confirming needs ``contact_check``: contacts
        validated the order's contact again before this transaction (400 / 503 as on create).
        """
        order = await self._lock_order(order_id, if_match)
        check_transition(order.number, OrderStatus(order.status), target)
        if target == OrderStatus.CONFIRMED:
            if contact_check is None or contact_check.contact_id != order.contact_id:
                raise ContactCheckMissingError(order_id)
            await self._usable_contact(contact_check)
        previous = OrderStatus(order.status)
        order.status = target
        order.updated_by = order.status_changed_by = get_subject()
        order.status_changed_at = func.now()
        await self.session.flush()
        view = await self._view(order)
        await write_order_event(self.session, OrderStatusChanged, view, previous_status=previous)
        logger.info("Order %s: %s -> %s", order.number, previous.value, target.value)
        return view

    # --- delete ---
    async def delete_order(self, order_id: int, if_match: IfMatch | None = None) -> None:
        """
        Delete a draft order (its lines go with it); 409 for any other status, 412 when
        ``if_match`` does not name its version.
        """
        order = await self._lock_order(order_id, if_match)
        if order.status != OrderStatus.DRAFT:
            raise OrderNotEditableError(order.number, OrderStatus(order.status), "deleted")
        view = await self._view(order)
        await write_order_event(self.session, OrderDeleted, view)
        await self.session.delete(order)
        await self.session.flush()
        logger.info("Deleted order %s (%s)", order_id, order.number)

    async def _view(self, order: Order) -> OrderView:
        contact = await contacts_read_model.get_contact(self.session, order.contact_id)
        return OrderView.of(order, contact)
