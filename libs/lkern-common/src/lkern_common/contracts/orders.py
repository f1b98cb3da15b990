"""
================================================================
FILE: orders.py
PATH: /libs/lkern-common/src/lkern_common/contracts/orders.py
DESCRIPTION: Order events of lkms102-orders (lkern.orders.*): the shared, typed contract
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Published by lkms102-orders (app/outbox_events.py builds them from its OrderView); no service
consumes them yet: a future consumer parses them with ``OrderCreated.parse(value)`` etc.
Committed JSON Schemas: ``schemas/lkern.orders.*.json`` (docs/events.md).

Money is a decimal string (``"39.98"``), as in the REST API and gRPC. The snapshot's
``created_at`` / ``updated_at`` are written with Python's ``isoformat()`` (``+00:00``), the
event's ``timestamp`` and the envelope's ``occurred_at`` with ``Z``: both ISO 8601, kept as they
were published before the contract was shared.
"""

# === IMPORTS ===
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from lkern_common.contracts.event import EventContract, UtcTimestamp

# === CONSTANTS ===
SOURCE = "lkms102-orders"

# === TYPES ===
OrderStatusName = Literal["draft", "confirmed", "fulfilled", "cancelled"]
DecimalText = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$", description="Decimal as text")]
IsoTimestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
SNAPSHOT_CONFIG = ConfigDict(
    extra="ignore", frozen=True, json_schema_serialization_defaults_required=True
)


# === SNAPSHOT ===
class OrderLineSnapshot(BaseModel):
    """One line of an order."""

    model_config = SNAPSHOT_CONFIG

    description: str
    quantity: DecimalText
    unit_price: DecimalText
    line_total: DecimalText


class OrderContact(BaseModel):
    """The order's contact: its id and its current name and email as orders knows them."""

    model_config = SNAPSHOT_CONFIG

    id: int
    name: str
    email: str


class OrderSnapshot(BaseModel):
    """The whole order, as the REST API returns it (including ``version``)."""

    model_config = SNAPSHOT_CONFIG

    id: int
    number: str = Field(..., description="ORD-YYYY-NNNNNN")
    status: OrderStatusName
    currency: str
    lines: list[OrderLineSnapshot]
    total: DecimalText
    notes: str | None
    contact: OrderContact
    created_at: IsoTimestamp
    updated_at: IsoTimestamp | None
    version: int = Field(..., ge=1)
    created_by: str | None
    updated_by: str | None
    status_changed_by: str | None


# === EVENTS ===
class OrderEvent(EventContract):
    """Fields every order event has."""

    SOURCE = SOURCE

    order_id: int
    order_number: str
    contact_id: int
    status: OrderStatusName
    total: DecimalText
    currency: str
    order: OrderSnapshot
    timestamp: UtcTimestamp = Field(..., description="= occurred_at")

    @classmethod
    def of(cls, order: OrderSnapshot, moment: datetime, **more: object) -> Self:
        """The event of ``order`` changed at ``moment`` (``more``: the type's own fields)."""
        return cls.model_validate(
            {
                "order_id": order.id,
                "order_number": order.number,
                "contact_id": order.contact.id,
                "status": order.status,
                "total": order.total,
                "currency": order.currency,
                "order": order,
                **more,
                "timestamp": moment,
            }
        )

    def event_data(self) -> dict[str, Any]:
        """The payload, ``timestamp`` last (as order events were always written)."""
        data = super().event_data()
        data["timestamp"] = data.pop("timestamp")
        return data

    def event_key(self) -> str:
        """All events of one order share a key, so a partition (order per order)."""
        return str(self.order_id)

    def occurred_at(self) -> datetime:
        return self.timestamp


class OrderCreated(OrderEvent):
    """An order was created (a draft)."""

    TOPIC = "lkern.orders.created"
    EVENT_TYPE = "OrderCreated"


class OrderUpdated(OrderEvent):
    """A draft's lines or notes changed."""

    TOPIC = "lkern.orders.updated"
    EVENT_TYPE = "OrderUpdated"


class OrderStatusChanged(OrderEvent):
    """The order's status changed; ``previous_status`` is the one it left."""

    TOPIC = "lkern.orders.status_changed"
    EVENT_TYPE = "OrderStatusChanged"

    previous_status: OrderStatusName


class OrderDeleted(OrderEvent):
    """A draft was deleted; ``order`` is its last state."""

    TOPIC = "lkern.orders.deleted"
    EVENT_TYPE = "OrderDeleted"


# === REGISTRY ===
ORDER_EVENTS: tuple[type[OrderEvent], ...] = (
    OrderCreated,
    OrderUpdated,
    OrderStatusChanged,
    OrderDeleted,
)
ORDER_TOPICS: tuple[str, ...] = tuple(event.TOPIC for event in ORDER_EVENTS)
