"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/models/__init__.py
DESCRIPTION: SQLAlchemy models of the contacts service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from app.models.contact import Contact
from lkern_common.idempotency import IdempotencyKey
from lkern_common.outbox.model import OutboxEvent

__all__ = ["Contact", "IdempotencyKey", "OutboxEvent"]
