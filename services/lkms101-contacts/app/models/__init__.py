"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/models/__init__.py
DESCRIPTION: SQLAlchemy models of the contacts service
VERSION: v1.2.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""

# === IMPORTS ===
from app.models.contact import Contact
from app.models.contact_count import ContactCount
from lkern_common.idempotency import IdempotencyKey
from lkern_common.outbox.model import OutboxEvent
from lkern_common.runtime_config import RuntimeSetting

__all__ = ["Contact", "ContactCount", "IdempotencyKey", "OutboxEvent", "RuntimeSetting"]
