"""
================================================================
FILE: consumer.py
PATH: /services/lkms102-orders/app/kafka/consumer.py
DESCRIPTION: Kafka consumer for contact events: keeps the local contacts read model up to date
VERSION: v1.1.0
UPDATED: 2026-12-02 02:45:00
================================================================

Consumer group ``lkms102-orders-group`` reads ``lkern.contacts.created|updated|deleted`` through
the shared idempotent consumer (lkern_common.kafka.consumer): each event is applied and its
``event_id`` recorded in the inbox in one transaction, the offset is committed after that, a
failing event is retried with backoff and then sent to ``lkern.orders.dlq``.

Only events signed by lkms101-contacts are applied (its public keys: EVENT_TRUSTED_JWKS); an
unsigned or forged one goes to ``lkern.orders.dlq`` with reason ``bad-signature``.

Each event carries the full contact snapshot (``contact``: id, name, email, is_active, version…)
next to the standard's fields; the read model applies it only when its version is newer
(app.services.contacts_read_model), because the three topics keep no order between them.
"""

# === IMPORTS ===
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import CONTACTS_SERVICE, Settings
from app.database import Database
from app.services.contacts_read_model import ContactSnapshot, apply_contact_snapshot
from lkern_common.database import INT32_MAX
from lkern_common.kafka.consumer import (
    DeadLetterReason,
    EventHandler,
    IdempotentConsumer,
    InvalidEventError,
)

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
CONTACT_CREATED_TOPIC = "lkern.contacts.created"
CONTACT_UPDATED_TOPIC = "lkern.contacts.updated"
CONTACT_DELETED_TOPIC = "lkern.contacts.deleted"
CONTACT_TOPICS = (CONTACT_CREATED_TOPIC, CONTACT_UPDATED_TOPIC, CONTACT_DELETED_TOPIC)
CONTACT_CREATED = "ContactCreated"
CONTACT_UPDATED = "ContactUpdated"
CONTACT_DELETED = "ContactDeleted"


# === EVENT SCHEMA ===
class ContactEventSnapshot(BaseModel):
    """The part of an event's ``contact`` snapshot the read model needs (other fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(..., gt=0, le=INT32_MAX)
    name: str = Field(..., max_length=255)
    email: str = Field(..., max_length=255)
    is_active: bool
    version: int = Field(..., ge=1)


def contact_snapshot_from_event(event: dict[str, Any], *, deleted: bool) -> ContactSnapshot:
    """
    The contact snapshot of a contact event. A snapshot that is missing or malformed, or whose
    id is not the event's ``contact_id``, raises InvalidEventError: the event can never apply.
    """
    try:
        snapshot = ContactEventSnapshot.model_validate(event.get("contact"))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'contact'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE, f"invalid contact snapshot: {problems}"
        ) from None
    contact_id = event.get("contact_id")
    if contact_id is not None and contact_id != snapshot.id:
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE,
            f"contact_id {contact_id!r} differs from the snapshot's id {snapshot.id}",
        )
    return ContactSnapshot(
        id=snapshot.id,
        name=snapshot.name,
        email=snapshot.email,
        is_active=snapshot.is_active,
        version=snapshot.version,
        deleted=deleted,
    )


# === HANDLERS ===
def contact_event_handler(*, deleted: bool) -> EventHandler:
    """A handler that applies the event's snapshot to the read model (in the inbox's session)."""

    async def handle(session: AsyncSession, event: dict[str, Any]) -> None:
        snapshot = contact_snapshot_from_event(event, deleted=deleted)
        await apply_contact_snapshot(session, snapshot)

    return handle


CONTACT_EVENT_HANDLERS: dict[str, EventHandler] = {
    CONTACT_CREATED: contact_event_handler(deleted=False),
    CONTACT_UPDATED: contact_event_handler(deleted=False),
    CONTACT_DELETED: contact_event_handler(deleted=True),
}


# === CONSUMER ===
def create_contact_events_consumer(settings: Settings, db: Database) -> IdempotentConsumer:
    """The consumer of contact events (group, topics and dead-letter topic from settings)."""
    return IdempotentConsumer(
        settings,
        db,
        topics=CONTACT_TOPICS,
        group_id=settings.kafka_consumer_group_id,
        handlers=CONTACT_EVENT_HANDLERS,
        dead_letter_topic=settings.kafka_dlq_topic,
        publishers=dict.fromkeys(CONTACT_TOPICS, CONTACTS_SERVICE),
    )
