"""
================================================================
FILE: orders_service.py
PATH: /services/lkms102-orders/app/services/orders_service.py
DESCRIPTION: Business logic for orders: create, read, list, edit drafts, change status, delete
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.kafka.events import OrderEventType, record_order_event
from app.models.contact import ContactReadModel
from app.models.order import ORDER_NUMBER_SEQUENCE, Order, OrderLine
from app.schemas.order import OrderCreate, OrderLineIn, OrderUpdate
from app.services import contacts_read_model
from app.services.contact_directory import ContactDirectory, ContactRejectedError
from app.services.money import order_total
from app.services.order_status import OrderNotEditableError, OrderStatus, check_transition
from lkern_common.errors import NotFoundError

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


class ContactsNotConfiguredError(RuntimeError):
    """A use case that validates contacts ran without a ContactDirectory (a wiring bug)."""


# === HELPERS ===
def format_order_number(sequence_value: int, year: int) -> str:
    """ORD-YYYY-NNNNNN: the year of creation (UTC) and the sequence value, at least 6 digits."""
    return f"{NUMBER_PREFIX}-{year:04d}-{sequence_value:0{NUMBER_DIGITS}d}"


def _build_lines(lines: Sequence[OrderLineIn]) -> list[OrderLine]:
    return [
        OrderLine(
            position=position,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=line.line_total,
        )
        for position, line in enumerate(lines, start=1)
    ]


def _list_filters(contact_id: int | None, status: OrderStatus | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if contact_id is not None:
        filters.append(Order.contact_id == contact_id)
    if status is not None:
        filters.append(Order.status == status)
    return filters


# === VIEW ===
@dataclass
class OrderView:
    """An order with its lines and what the read model knows about its contact."""

    order: Order
    contact: ContactReadModel | None

    @property
    def contact_name(self) -> str:
        """The contact's current name (read model), else the snapshot taken at creation."""
        return self.contact.name if self.contact is not None else self.order.contact_name

    @property
    def contact_email(self) -> str:
        """The contact's current email (read model), else the snapshot taken at creation."""
        return self.contact.email if self.contact is not None else self.order.contact_email


# === SERVICE ===
class OrdersService:
    """
    Orders use cases. Works inside the caller's transaction: it flushes, never commits (the
    request, or the gRPC call, owns the transaction). Every change writes its order event to
    the outbox in that same transaction.
    """

    def __init__(self, session: AsyncSession, contacts: ContactDirectory | None = None) -> None:
        self.session = session
        self._contacts = contacts

    @property
    def contacts(self) -> ContactDirectory:
        if self._contacts is None:
            raise ContactsNotConfiguredError("OrdersService needs a ContactDirectory here")
        return self._contacts

    # --- reads ---
    def _view_query(self) -> Select[Order, ContactReadModel]:
        return (
            select(Order, ContactReadModel)
            .outerjoin(ContactReadModel, ContactReadModel.id == Order.contact_id)
            .options(selectinload(Order.lines))
        )

    async def get_order_view(self, order_id: int) -> OrderView:
        """The order with its contact, or OrderNotFoundError."""
        row = (await self.session.execute(self._view_query().where(Order.id == order_id))).first()
        if row is None:
            raise OrderNotFoundError(order_id)
        return OrderView(order=row[0], contact=row[1])

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
        filters = _list_filters(contact_id, status)
        page = self._view_query().where(*filters).order_by(Order.id).offset(skip).limit(limit)
        views = [
            OrderView(order=row[0], contact=row[1]) for row in await self.session.execute(page)
        ]
        if skip == 0 and len(views) < limit:
            total = len(views)  # the whole result fits in this page: no count query needed
        else:
            count = select(func.count()).select_from(Order).where(*filters)
            total = await self.session.scalar(count) or 0
        return views, total

    async def get_orders_by_contact(
        self, contact_id: int, *, skip: int = 0, limit: int = 100
    ) -> tuple[list[OrderView], int]:
        """The contact's orders (oldest first) and how many there are."""
        return await self.list_orders(skip=skip, limit=limit, contact_id=contact_id)

    async def _lock_order(self, order_id: int) -> Order:
        """The order with its lines, its row locked until the transaction ends."""
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
        return order

    # --- contact checks ---
    async def _usable_contact(self, contact_id: int) -> ContactReadModel:
        """
        The contact, when it may take orders. ValidateContact decides (unknown / inactive → 400
        with contacts' reason, unreachable → 503). The read model must agree: when it does not
        know the contact yet (its event has not arrived) or says it is inactive or deleted,
        GetContact's answer is merged in by version; a read model that still says inactive or
        deleted afterwards (a newer change than contacts answered) refuses the order (400).
        """
        await self.contacts.validate(contact_id)
        contact = await contacts_read_model.get_contact(self.session, contact_id)
        if contact is None or contact.deleted or not contact.is_active:
            snapshot = await self.contacts.fetch(contact_id)
            if snapshot is None:
                raise ContactRejectedError(f"Contact with id {contact_id} not found")
            await contacts_read_model.apply_contact_snapshot(self.session, snapshot)
            contact = await contacts_read_model.get_contact(self.session, contact_id)
        if contact is None or contact.deleted:
            raise ContactRejectedError(f"Contact {contact_id} has been deleted")
        if not contact.is_active:
            raise ContactRejectedError(f"Contact {contact_id} is inactive")
        return contact

    # --- create ---
    async def create_order(self, data: OrderCreate) -> OrderView:
        """Create a draft order for a validated contact; number and totals by the service."""
        contact = await self._usable_contact(data.contact_id)
        sequence_value, now = (
            await self.session.execute(select(ORDER_NUMBER_SEQUENCE.next_value(), func.now()))
        ).one()
        lines = _build_lines(data.lines)
        order = Order(
            number=format_order_number(sequence_value, now.astimezone(UTC).year),
            contact_id=contact.id,
            contact_name=contact.name,
            contact_email=contact.email,
            status=OrderStatus.DRAFT,
            currency=data.currency,
            total=order_total(line.line_total for line in lines),
            notes=data.notes,
            lines=lines,
        )
        self.session.add(order)
        await self.session.flush()
        view = OrderView(order=order, contact=contact)
        await record_order_event(self.session, OrderEventType.CREATED, view)
        logger.info("Created order %s (%s) for contact %s", order.id, order.number, contact.id)
        return view

    # --- update ---
    async def update_order(self, order_id: int, data: OrderUpdate) -> OrderView:
        """Edit a draft's lines (all replaced) and/or notes; 409 unless the order is a draft."""
        order = await self._lock_order(order_id)
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
            await self.session.flush()
            view = await self._view(order)
            await record_order_event(self.session, OrderEventType.UPDATED, view)
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
    async def change_status(self, order_id: int, target: OrderStatus) -> OrderView:
        """
        Move the order through the state machine (409 on an illegal transition). Confirming
        validates the contact again (400 / 503 as on create).
        """
        current = await self.session.scalar(select(Order).where(Order.id == order_id))
        if current is None:
            raise OrderNotFoundError(order_id)
        check_transition(current.number, OrderStatus(current.status), target)
        if target == OrderStatus.CONFIRMED:
            # Outside the row lock: a slow contacts service must not block the order row.
            await self._usable_contact(current.contact_id)
        order = await self._lock_order(order_id)
        previous = OrderStatus(order.status)
        check_transition(order.number, previous, target)  # it may have changed meanwhile
        order.status = target
        await self.session.flush()
        view = await self._view(order)
        await record_order_event(
            self.session, OrderEventType.STATUS_CHANGED, view, previous_status=previous
        )
        logger.info("Order %s: %s -> %s", order.number, previous.value, target.value)
        return view

    # --- delete ---
    async def delete_order(self, order_id: int) -> None:
        """Delete a draft order (its lines go with it); 409 for any other status."""
        order = await self._lock_order(order_id)
        if order.status != OrderStatus.DRAFT:
            raise OrderNotEditableError(order.number, OrderStatus(order.status), "deleted")
        view = await self._view(order)
        await record_order_event(self.session, OrderEventType.DELETED, view)
        await self.session.delete(order)
        await self.session.flush()
        logger.info("Deleted order %s (%s)", order_id, order.number)

    async def _view(self, order: Order) -> OrderView:
        contact = await contacts_read_model.get_contact(self.session, order.contact_id)
        return OrderView(order=order, contact=contact)
