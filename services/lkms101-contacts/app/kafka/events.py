"""
================================================================
FILE: events.py
PATH: /services/lkms101-contacts/app/kafka/events.py
DESCRIPTION: Contact events (lkern.contacts.*): payloads, written to the outbox with the change
VERSION: v1.1.0
UPDATED: 2026-12-02 06:25:00
================================================================

The standard publishes after commit and only logs a failure, so an event is lost while Kafka is
down. Here each event is written to the outbox in the transaction that makes the change and the
outbox relay publishes it (lkern_common.outbox). The contract is in docs/events.md.
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.data.contacts import ContactView
from app.models.contact import Contact
from app.schemas.contact import ContactResponse
from lkern_common.events import build_event, format_timestamp
from lkern_common.outbox import add_envelope

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
EVENT_SOURCE = "lkms101-contacts"
# Topic naming: lkern.{service}.{event_type} (the standard's names).
KAFKA_TOPICS = {
    "CONTACT_CREATED": "lkern.contacts.created",
    "CONTACT_UPDATED": "lkern.contacts.updated",
    "CONTACT_DELETED": "lkern.contacts.deleted",
}
CONTACT_TOPICS: tuple[str, ...] = tuple(KAFKA_TOPICS.values())


# === EVENT TYPES ===
class ContactEventType(StrEnum):
    """Contact events; the value is the standard's ``event_type``."""

    CREATED = "ContactCreated"
    UPDATED = "ContactUpdated"
    DELETED = "ContactDeleted"

    @property
    def topic(self) -> str:
        """The Kafka topic of this event type."""
        return {
            ContactEventType.CREATED: KAFKA_TOPICS["CONTACT_CREATED"],
            ContactEventType.UPDATED: KAFKA_TOPICS["CONTACT_UPDATED"],
            ContactEventType.DELETED: KAFKA_TOPICS["CONTACT_DELETED"],
        }[self]


# === PAYLOAD ===
def contact_snapshot(contact: Contact | ContactView) -> dict[str, Any]:
    """The full contact as the REST API returns it (same fields, same formats)."""
    return ContactResponse.model_validate(contact).model_dump(mode="json")


def contact_event_data(
    event_type: ContactEventType,
    snapshot: dict[str, Any],
    occurred_at: datetime,
    changed_fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The event's own fields: the standard's five, the snapshot, and the changed fields."""
    data: dict[str, Any] = {
        "contact_id": snapshot["id"],
        "contact_name": snapshot["name"],
        "contact_email": snapshot["email"],
        "timestamp": format_timestamp(occurred_at),
        "contact": snapshot,
    }
    if changed_fields is not None:
        data["changed_fields"] = list(changed_fields)
    return data


# === OUTBOX ===
async def record_contact_event(
    session: AsyncSession,
    event_type: ContactEventType,
    snapshot: dict[str, Any],
    occurred_at: datetime,
    changed_fields: Sequence[str] | None = None,
) -> str:
    """
    Write the event to the outbox in ``session``'s transaction: it is published after, and
    only if, that transaction commits. ``occurred_at`` is the change's database time (the
    contact's created_at / updated_at; for a delete, the deleting transaction's time).
    Returns the event id.
    """
    event = build_event(
        topic=event_type.topic,
        key=str(snapshot["id"]),
        event_type=event_type.value,
        source=EVENT_SOURCE,
        data=contact_event_data(event_type, snapshot, occurred_at, changed_fields),
        occurred_at=occurred_at,
    )
    await add_envelope(session, event)
    logger.debug("Outbox: %s for contact %s (%s)", event_type.value, snapshot["id"], event.event_id)
    return event.event_id
