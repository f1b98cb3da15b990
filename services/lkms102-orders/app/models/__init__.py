"""
================================================================
FILE: __init__.py
PATH: /services/lkms102-orders/app/models/__init__.py
DESCRIPTION: SQLAlchemy models of the orders service
VERSION: v1.2.0
UPDATED: 2026-12-02 06:30:00
================================================================
"""

# === IMPORTS ===
from app.models.contact import ContactReadModel
from app.models.order import Order, OrderLine
from lkern_common.idempotency import IdempotencyKey
from lkern_common.kafka.inbox import InboxEvent
from lkern_common.outbox.model import OutboxEvent
from lkern_common.runtime_config import RuntimeSetting

__all__ = [
    "ContactReadModel",
    "IdempotencyKey",
    "InboxEvent",
    "Order",
    "OrderLine",
    "OutboxEvent",
    "RuntimeSetting",
]
