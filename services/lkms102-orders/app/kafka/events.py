"""
================================================================
FILE: events.py
PATH: /services/lkms102-orders/app/kafka/events.py
DESCRIPTION: Order events (lkern.orders.*): payloads, written to the outbox with the change
VERSION: v1.2.0
UPDATED: 2026-12-02 03:15:00
================================================================
"""

# === IMPORTS ===
from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.services.money import format_decimal
from app.services.order_status import OrderStatus
from lkern_common.events import build_event, format_timestamp
from lkern_common.outbox.store import add_envelope

if TYPE_CHECKING:
    from app.services.orders_service import OrderView

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
SERVICE = "orders"
SOURCE = "lkms102-orders"


# === EVENT TYPES ===
class OrderEventType(StrEnum):
    """Order events: the value is the topic suffix (lkern.orders.<value>)."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS_CHANGED = "status_changed"
    DELETED = "deleted"

    @property
    def topic(self) -> str:
        """The Kafka topic of this event type."""
        return f"lkern.{SERVICE}.{self.value}"

    @property
    def event_name(self) -> str:
        """The standard's event_type: OrderCreated, OrderStatusChanged…"""
        return "Order" + "".join(part.capitalize() for part in self.value.split("_"))


ORDER_TOPICS: tuple[str, ...] = tuple(event_type.topic for event_type in OrderEventType)


# === PAYLOAD ===
def order_snapshot(view: OrderView) -> dict[str, Any]:
    """The full order as events carry it (money as strings, timestamps ISO 8601)."""
    order = view.order
    return {
        "id": order.id,
        "number": order.number,
        "status": OrderStatus(order.status).value,
        "currency": order.currency,
        "lines": [
            {
                "description": line.description,
                "quantity": format_decimal(line.quantity),
                "unit_price": format_decimal(line.unit_price),
                "line_total": format_decimal(line.line_total),
            }
            for line in view.lines
        ],
        "total": format_decimal(order.total),
        "notes": order.notes,
        "contact": {"id": order.contact_id, "name": view.contact_name, "email": view.contact_email},
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat() if order.updated_at else None,
        "version": order.version,
        "created_by": order.created_by,
        "updated_by": order.updated_by,
        "status_changed_by": order.status_changed_by,
    }


def order_event_data(
    event_type: OrderEventType, view: OrderView, previous_status: OrderStatus | None = None
) -> dict[str, Any]:
    """The event's own fields (the envelope is added by the outbox)."""
    order = view.order
    data: dict[str, Any] = {
        "order_id": order.id,
        "order_number": order.number,
        "contact_id": order.contact_id,
        "status": OrderStatus(order.status).value,
        "total": format_decimal(order.total),
        "currency": order.currency,
        "order": order_snapshot(view),
    }
    if previous_status is not None:
        data["previous_status"] = previous_status.value
    return data


# === OUTBOX ===
async def record_order_event(
    session: AsyncSession,
    event_type: OrderEventType,
    view: OrderView,
    *,
    previous_status: OrderStatus | None = None,
) -> None:
    """
    Write the event to the outbox in the session's transaction: it is published (keyed by the
    order id) after, and only if, the transaction commits. The caller holds the order's row
    lock (or just created it), so events of one order enter the outbox in commit order.
    """
    order = view.order
    if event_type is OrderEventType.DELETED:
        moment = datetime.now(UTC)
    else:
        moment = order.updated_at or order.created_at
    event = build_event(
        topic=event_type.topic,
        key=str(order.id),
        event_type=event_type.event_name,
        source=SOURCE,
        occurred_at=moment,
        data={
            **order_event_data(event_type, view, previous_status),
            "timestamp": format_timestamp(moment),
        },
    )
    await add_envelope(session, event)
    logger.debug("Order event %s for order %s", event_type.event_name, order.id)
