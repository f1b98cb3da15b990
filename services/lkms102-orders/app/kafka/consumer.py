"""
================================================================
FILE: consumer.py
PATH: /services/lkms102-orders/app/kafka/consumer.py
DESCRIPTION: Kafka consumer for contact events: keeps the local contacts read model up to date
VERSION: v1.2.0
UPDATED: 2026-12-02 05:50:00
================================================================

Consumer group ``lkms102-orders-group`` reads ``lkern.contacts.created|updated|deleted`` through
the shared idempotent consumer (lkern_common.kafka.consumer): each event is applied and its
``event_id`` recorded in the inbox in one transaction, the offset is committed after that, a
failing event is retried with backoff and then sent to ``lkern.orders.dlq``.

Only events signed by lkms101-contacts are applied (its public keys: EVENT_TRUSTED_JWKS); an
unsigned or forged one goes to ``lkern.orders.dlq`` with reason ``bad-signature``.

Each event is parsed into its shared contract (lkern_common.contracts.contacts: the model the
contacts service publishes from), which carries the full contact snapshot (``contact``: id,
name, email, is_active, version…) next to the standard's fields; the read model applies it only
when its version is newer (app.services.contacts_read_model), because the three topics keep no
order between them.
"""

# === IMPORTS ===
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import CONTACTS_SERVICE, Settings
from app.database import Database
from app.services.contacts_read_model import ContactState, apply_contact_snapshot
from lkern_common.contracts.contacts import (
    CONTACT_TOPICS,
    ContactCreated,
    ContactDeleted,
    ContactEvent,
    ContactUpdated,
)
from lkern_common.kafka.consumer import (
    DeadLetterReason,
    EventHandler,
    IdempotentConsumer,
    InvalidEventError,
)

# === LOGGING ===
logger = logging.getLogger(__name__)


# === PARSING ===
def parse_contact_event(contract: type[ContactEvent], event: dict[str, Any]) -> ContactEvent:
    """
    ``event`` parsed into its contract. A missing or malformed field (the snapshot among them),
    or a ``contact_id`` that is not the snapshot's id, raises InvalidEventError: the event can
    never apply.
    """
    try:
        return contract.parse(event)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'event'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE, f"invalid {contract.EVENT_TYPE} event: {problems}"
        ) from None


# === HANDLERS ===
def contact_event_handler(contract: type[ContactEvent]) -> EventHandler:
    """A handler that applies the event's snapshot to the read model (in the inbox's session)."""
    deleted = contract is ContactDeleted

    async def handle(session: AsyncSession, event: dict[str, Any]) -> None:
        parsed = parse_contact_event(contract, event)
        await apply_contact_snapshot(
            session, ContactState.from_snapshot(parsed.contact, deleted=deleted)
        )

    return handle


CONTACT_EVENT_HANDLERS: dict[str, EventHandler] = {
    contract.EVENT_TYPE: contact_event_handler(contract)
    for contract in (ContactCreated, ContactUpdated, ContactDeleted)
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
