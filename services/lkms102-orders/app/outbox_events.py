"""
================================================================
FILE: outbox_events.py
PATH: /services/lkms102-orders/app/outbox_events.py
DESCRIPTION: Writes order events (lkern_common.contracts.orders) to the outbox with the change
VERSION: v2.0.0
UPDATED: 2026-12-02 06:15:00
================================================================

The contract (topics, types, payload models) is shared: lkern_common.contracts.orders;
docs/events.md. The events are built from the order itself (``OrderView``: the order, its
lines and its contact's current name and email), never from the REST response schema, so a
REST change cannot change the Kafka contract.
"""

# === IMPORTS ===
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.services.money import format_decimal
from app.services.order_status import OrderStatus
from lkern_common.contracts.orders import (
    OrderContact,
    OrderDeleted,
    OrderEvent,
    OrderLineSnapshot,
    OrderSnapshot,
)
from lkern_common.outbox.store import add_envelope

if TYPE_CHECKING:
    from app.services.orders_service import OrderView

# === LOGGING ===
logger = logging.getLogger(__name__)


# === PAYLOAD ===
def order_snapshot(view: OrderView) -> OrderSnapshot:
    """The full order as events carry it (money as decimal strings)."""
    order = view.order
    return OrderSnapshot(
        id=order.id,
        number=order.number,
        status=OrderStatus(order.status).value,
        currency=order.currency,
        lines=[
            OrderLineSnapshot(
                description=line.description,
                quantity=format_decimal(line.quantity),
                unit_price=format_decimal(line.unit_price),
                line_total=format_decimal(line.line_total),
            )
            for line in view.lines
        ],
        total=format_decimal(order.total),
        notes=order.notes,
        contact=OrderContact(id=order.contact_id, name=view.contact_name, email=view.contact_email),
        created_at=order.created_at,
        updated_at=order.updated_at,
        version=order.version,
        created_by=order.created_by,
        updated_by=order.updated_by,
        status_changed_by=order.status_changed_by,
    )


def order_event(
    contract: type[OrderEvent], view: OrderView, previous_status: OrderStatus | None = None
) -> OrderEvent:
    """
    The ``contract`` event of the order in ``view`` (a pure function of the order, except a
    delete's time: now). It happened at the order's last change; a delete, now.
    """
    order = view.order
    deleted = contract is OrderDeleted
    moment = datetime.now(UTC) if deleted else (order.updated_at or order.created_at)
    more = {} if previous_status is None else {"previous_status": previous_status.value}
    return contract.of(order_snapshot(view), moment, **more)


# === OUTBOX ===
async def write_order_event(
    session: AsyncSession,
    contract: type[OrderEvent],
    view: OrderView,
    *,
    previous_status: OrderStatus | None = None,
) -> None:
    """
    Write the event to the outbox in the session's transaction: it is published (keyed by the
    order id) after, and only if, the transaction commits. The caller holds the order's row
    lock (or just created it), so events of one order enter the outbox in commit order.
    """
    event = order_event(contract, view, previous_status)
    await add_envelope(session, event.envelope())
    logger.debug("Order event %s for order %s", event.EVENT_TYPE, event.order_id)
