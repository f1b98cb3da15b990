"""
================================================================
FILE: outbox_events.py
PATH: /services/lkms102-orders/app/outbox_events.py
DESCRIPTION: Writes order events (lkern_common.contracts.orders) to the outbox with the change
VERSION: v2.1.0
UPDATED: 2026-12-02 07:05:00
================================================================

The contract (topics, types, payload models) is shared: lkern_common.contracts.orders;
docs/events.md. The events are built from the order itself (``OrderView``, app.data.orders:
the order, its lines and its contact's current name and email), never from the REST response
schema, so a REST change cannot change the Kafka contract.
"""

# === IMPORTS ===
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.data.orders import OrderView
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

# === LOGGING ===
logger = logging.getLogger(__name__)


# === PAYLOAD ===
def order_snapshot(view: OrderView) -> OrderSnapshot:
    """The full order as events carry it (money as decimal strings)."""
    return OrderSnapshot(
        id=view.id,
        number=view.number,
        status=view.status.value,
        currency=view.currency,
        lines=[
            OrderLineSnapshot(
                description=line.description,
                quantity=format_decimal(line.quantity),
                unit_price=format_decimal(line.unit_price),
                line_total=format_decimal(line.line_total),
            )
            for line in view.lines
        ],
        total=format_decimal(view.total),
        notes=view.notes,
        contact=OrderContact(id=view.contact_id, name=view.contact_name, email=view.contact_email),
        created_at=view.created_at,
        updated_at=view.updated_at,
        version=view.version,
        created_by=view.created_by,
        updated_by=view.updated_by,
        status_changed_by=view.status_changed_by,
    )


def order_event(
    contract: type[OrderEvent], view: OrderView, previous_status: OrderStatus | None = None
) -> OrderEvent:
    """
    The ``contract`` event of the order in ``view`` (a pure function of the order, except a
    delete's time: now). It happened at the order's last change; a delete, now.
    """
    deleted = contract is OrderDeleted
    moment = datetime.now(UTC) if deleted else (view.updated_at or view.created_at)
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
