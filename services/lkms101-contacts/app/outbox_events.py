"""
================================================================
FILE: outbox_events.py
PATH: /services/lkms101-contacts/app/outbox_events.py
DESCRIPTION: Writes contact events (lkern_common.contracts.contacts) to the outbox with the change
VERSION: v2.0.0
UPDATED: 2026-12-02 06:10:00
================================================================

The standard publishes after commit and only logs a failure, so an event is lost while Kafka is
down. Here each event is written to the outbox in the transaction that makes the change and the
outbox relay publishes it (lkern_common.outbox). The contract (topics, types, payload models) is
shared with the consumers: lkern_common.contracts.contacts; docs/events.md.

The events are built from the contact itself (``ContactCreated.from_contact(row)``, pure
functions of the row), never from the REST response schema: a change of the REST API cannot
change the Kafka contract.
"""

# === IMPORTS ===
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from lkern_common.contracts.contacts import ContactEvent
from lkern_common.outbox import add_envelope

# === LOGGING ===
logger = logging.getLogger(__name__)


# === OUTBOX ===
async def write_contact_event(session: AsyncSession, event: ContactEvent) -> str:
    """
    Write ``event`` to the outbox in ``session``'s transaction: it is published after, and
    only if, that transaction commits. Returns the event id.
    """
    envelope = event.envelope()
    await add_envelope(session, envelope)
    logger.debug(
        "Outbox: %s for contact %s (%s)", event.EVENT_TYPE, event.contact_id, envelope.event_id
    )
    return envelope.event_id
