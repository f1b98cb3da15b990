"""
================================================================
FILE: contacts.py
PATH: /libs/lkern-common/src/lkern_common/contracts/contacts.py
DESCRIPTION: Contact events of lkms101-contacts (lkern.contacts.*): the shared, typed contract
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Published by lkms101-contacts (app/outbox_events.py), consumed by lkms102-orders
(app/kafka/consumer.py): both use these models, so the wire form is declared once. Committed
JSON Schemas: ``schemas/lkern.contacts.*.json`` (docs/events.md).

Each event is built by a pure function of the contact (``ContactCreated.from_contact(row)``),
an ORM object or a row with the contacts table's columns as attributes: whoever writes the
contact (ORM, a Core INSERT, a single CTE that writes contact and outbox row) builds the same
event from what it wrote.
"""

# === IMPORTS ===
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lkern_common.contracts.event import EventContract, UtcTimestamp
from lkern_common.database import INT32_MAX

# === CONSTANTS ===
SOURCE = "lkms101-contacts"


# === DOMAIN OBJECT ===
class ContactRecord(Protocol):
    """What an event needs of a contact: the contacts table's columns as attributes."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime | None: ...
    @property
    def created_by(self) -> str | None: ...
    @property
    def updated_by(self) -> str | None: ...


# === SNAPSHOT ===
class ContactSnapshot(BaseModel):
    """
    The whole contact at one version, as every contact event carries it (``contact``).
    Consumers keep the snapshot with the highest ``version`` (the three topics keep no order
    between them).
    """

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        from_attributes=True,
        json_schema_serialization_defaults_required=True,
    )

    name: str = Field(..., max_length=255, description="Contact full name")
    email: str = Field(..., max_length=255, description="Contact email address")
    phone: str | None = Field(None, max_length=50, description="Contact phone number")
    id: int = Field(..., gt=0, le=INT32_MAX, description="Contact id in lkms101-contacts")
    is_active: bool = Field(..., description="Whether the contact may take orders")
    version: int = Field(..., ge=1, description="1 when created, +1 on every change")
    created_at: UtcTimestamp
    updated_at: UtcTimestamp | None = None
    # Added to version 1 later (issue 12): absent in older events, hence the defaults.
    created_by: str | None = Field(None, description="Who created it (the token's subject)")
    updated_by: str | None = Field(None, description="Who changed it last (null until changed)")

    @classmethod
    def from_contact(cls, contact: ContactRecord) -> Self:
        """The snapshot of a contact (ORM object or row)."""
        return cls.model_validate(contact, from_attributes=True)


# === EVENTS ===
class ContactEvent(EventContract):
    """Fields every contact event has: the standard's four and the snapshot."""

    SOURCE = SOURCE

    contact_id: int = Field(..., description="= contact.id")
    contact_name: str = Field(..., description="= contact.name")
    contact_email: str = Field(..., description="= contact.email")
    timestamp: UtcTimestamp = Field(..., description="= occurred_at")
    contact: ContactSnapshot

    @model_validator(mode="after")
    def _same_contact(self) -> Self:
        if self.contact_id != self.contact.id:
            raise ValueError(
                f"contact_id {self.contact_id} differs from the snapshot's id {self.contact.id}"
            )
        return self

    @classmethod
    def _of(cls, snapshot: ContactSnapshot, moment: datetime, **more: object) -> Self:
        return cls.model_validate(
            {
                "contact_id": snapshot.id,
                "contact_name": snapshot.name,
                "contact_email": snapshot.email,
                "timestamp": moment,
                "contact": snapshot,
                **more,
            }
        )

    def event_key(self) -> str:
        """All events of one contact share a key, so a partition (order per contact)."""
        return str(self.contact_id)

    def occurred_at(self) -> datetime:
        return self.timestamp


class ContactCreated(ContactEvent):
    """A contact was created (POST /api/v1/contacts/, or any other interface)."""

    TOPIC = "lkern.contacts.created"
    EVENT_TYPE = "ContactCreated"

    @classmethod
    def from_contact(cls, contact: ContactRecord) -> Self:
        """The event of a contact just inserted (its ``created_at`` is the event's time)."""
        return cls._of(ContactSnapshot.from_contact(contact), contact.created_at)


class ContactUpdated(ContactEvent):
    """At least one field of a contact changed; ``changed_fields`` names them."""

    TOPIC = "lkern.contacts.updated"
    EVENT_TYPE = "ContactUpdated"

    changed_fields: list[str] = Field(..., description="The fields the change set")

    @classmethod
    def from_contact(cls, contact: ContactRecord, changed_fields: Sequence[str]) -> Self:
        """The event of a changed contact (its ``updated_at`` is the event's time)."""
        if contact.updated_at is None:
            raise ValueError("an updated contact has updated_at")
        return cls._of(
            ContactSnapshot.from_contact(contact),
            contact.updated_at,
            changed_fields=list(changed_fields),
        )


class ContactDeleted(ContactEvent):
    """
    A contact was deleted. ``contact`` is its last state with ``version`` increased by 1, so
    that a consumer comparing versions applies the delete after every earlier event.
    """

    TOPIC = "lkern.contacts.deleted"
    EVENT_TYPE = "ContactDeleted"

    @classmethod
    def from_contact(cls, contact: ContactRecord, deleted_at: datetime) -> Self:
        """The event of a contact deleted at ``deleted_at`` (the deleting transaction's time)."""
        last = ContactSnapshot.from_contact(contact)
        return cls._of(last.model_copy(update={"version": last.version + 1}), deleted_at)


# === REGISTRY ===
CONTACT_EVENTS: tuple[type[ContactEvent], ...] = (ContactCreated, ContactUpdated, ContactDeleted)
CONTACT_TOPICS: tuple[str, ...] = tuple(event.TOPIC for event in CONTACT_EVENTS)
