"""
================================================================
FILE: contacts_service.py
PATH: /services/lkms101-contacts/app/services/contacts_service.py
DESCRIPTION: Contacts business logic: reads (ContactsReader), changes with events (ContactsService)
VERSION: v1.7.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""

# === IMPORTS ===
import logging
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

import asyncpg
import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.data.contacts import (
    CONTACT_BY_ID,
    CONTACTS_AFTER_ID,
    CONTACTS_BY_IDS,
    CREATE_CONTACT,
    ContactView,
    Marks,
    new_contact_view,
    page_from_rows,
    page_query,
)
from app.models.contact import Contact
from app.outbox_events import write_contact_event
from app.schemas.contact import ContactCreate, ContactUpdate
from lkern_common.contracts.contacts import (
    ContactCreated,
    ContactDeleted,
    ContactSnapshot,
    ContactUpdated,
)
from lkern_common.database import Database
from lkern_common.errors import BadRequestError, NotFoundError
from lkern_common.request_context import get_subject
from lkern_common.web.conditional import IfMatch

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
EMAIL_INDEX = "ix_contacts_email"
# Every read returns ContactView (app.data.contacts): one type for REST, gRPC and events.
ContactRow = ContactView


# === ERRORS ===
class ContactNotFoundError(NotFoundError):
    """No contact with this id."""

    def __init__(self, contact_id: int) -> None:
        super().__init__(f"Contact with id {contact_id} not found")


class DuplicateEmailError(BadRequestError):
    """Another contact already has this email (compared case-insensitively)."""

    def __init__(self, email: str) -> None:
        super().__init__(f"Contact with email {email} already exists")


# === HELPERS ===
def _is_duplicate_email(error: IntegrityError) -> bool:
    cause = getattr(error.orig, "__cause__", None)
    return getattr(cause, "constraint_name", None) == EMAIL_INDEX or EMAIL_INDEX in str(error.orig)


def create_arguments(data: ContactCreate) -> list[Any]:
    """
    The arguments of CREATE_CONTACT: the contact's values and its ContactCreated event, built by
    the contract's own function (ContactCreated.from_contact) from the view the contact will
    have, with marks where the database fills in the id and created_at.
    """
    marks = Marks.new()
    view = new_contact_view(marks, data.name, data.email, data.phone, get_subject())
    event = ContactCreated.from_contact(view).envelope()
    return [
        data.name,
        data.email,
        data.phone,
        view.created_by,
        uuid.UUID(event.event_id),
        event.topic,
        orjson.dumps(event.payload).decode(),
        orjson.dumps(event.headers).decode(),
        marks.id_text,
        marks.created_at_text,
    ]


# === READER ===
class ContactsReader:
    """
    Contacts reads and the create that needs no transaction of the caller: each one statement
    on asyncpg in autocommit (app.data.contacts), returning ContactView.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_contact(self, contact_id: int) -> ContactView:
        """The contact, or ContactNotFoundError."""
        contact = await self.find_contact(contact_id)
        if contact is None:
            raise ContactNotFoundError(contact_id)
        return contact

    async def find_contact(self, contact_id: int) -> ContactView | None:
        """The contact, or None."""
        row = await self.db.fetch_row(CONTACT_BY_ID, contact_id)
        return None if row is None else ContactView.from_row(row)

    async def get_contacts_by_ids(self, contact_ids: Sequence[int]) -> list[ContactView]:
        """The contacts that exist among ``contact_ids``, in one query, ordered by id."""
        if not contact_ids:
            return []
        rows = await self.db.fetch_rows(CONTACTS_BY_IDS, sorted(set(contact_ids)))
        return [ContactView.from_row(row) for row in rows]

    async def contacts_after(self, after_id: int, page_size: int) -> list[ContactView]:
        """Up to ``page_size`` contacts with an id greater than ``after_id``, ordered by id."""
        rows = await self.db.fetch_rows(CONTACTS_AFTER_ID, after_id, page_size)
        return [ContactView.from_row(row) for row in rows]

    async def list_contacts(
        self, *, skip: int, limit: int, is_active: bool | None = None, q: str | None = None
    ) -> tuple[list[ContactView], int]:
        """
        A page of contacts ordered by id, and the exact number of all contacts that match
        (without ``q`` from the kept counts, contact_counts; with it, counted).
        """
        sql, arguments = page_query(skip, limit, is_active, q)
        return page_from_rows(await self.db.fetch_rows(sql, *arguments))

    async def create_contact(self, data: ContactCreate) -> ContactView:
        """
        Create a contact and its ContactCreated event in one statement, committed on its own
        (autocommit: both rows or neither); DuplicateEmailError when the email is taken.
        """
        try:
            row = await self.db.fetch_row(CREATE_CONTACT, *create_arguments(data))
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == EMAIL_INDEX:
                raise DuplicateEmailError(data.email) from None
            raise
        assert row is not None  # INSERT … RETURNING of one row
        contact = ContactView.from_row(row)
        logger.info("Created contact: %s", contact.id)
        return contact


# === SERVICE ===
class ContactsService:
    """
    Contacts changes. Works inside the caller's transaction: it flushes, never commits
    (the request owns the transaction). Who makes a change is the current request's subject
    (lkern_common.request_context.get_subject: the access token's `sub`): it is stored as
    created_by / updated_by and carried by the change's event as `actor`.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- changes (in the caller's transaction) ---
    async def create_contact(self, data: ContactCreate) -> ContactView:
        """
        Create a contact and its ContactCreated event in the caller's transaction (the same
        one statement as ContactsReader.create_contact); DuplicateEmailError when taken.
        """
        connection = await self.session.connection()
        try:
            result = await connection.exec_driver_sql(CREATE_CONTACT, tuple(create_arguments(data)))
            contact = ContactView.from_row(result.one())
        except IntegrityError as error:
            self._raise_duplicate_email(error, data.email)
        logger.info("Created contact: %s", contact.id)
        return contact

    async def update_contact(
        self, contact_id: int, data: ContactUpdate, if_match: IfMatch | None = None
    ) -> tuple[Contact, list[str]]:
        """
        Update the fields sent; returns the contact and the names of the fields that changed.
        PreconditionFailedError (nothing changed) when ``if_match`` does not name its version.
        """
        contact = await self._lock_contact(contact_id, if_match)
        changed = [
            field
            for field, value in data.model_dump(exclude_unset=True).items()
            if getattr(contact, field) != value
        ]
        for field in changed:
            setattr(contact, field, getattr(data, field))
        if changed:  # a request that changes nothing writes nothing and publishes nothing
            contact.updated_by = get_subject()
            await self._flush(contact.email)
            # updated_at: set by the UPDATE, read back by RETURNING (the event's time)
            await write_contact_event(self.session, ContactUpdated.from_contact(contact, changed))
            logger.info("Updated contact %s: %s", contact_id, ", ".join(changed))
        return contact, changed

    async def delete_contact(self, contact_id: int, if_match: IfMatch | None = None) -> Contact:
        """
        Delete a contact (hard delete, as the standard) and record ContactDeleted;
        PreconditionFailedError (nothing deleted) when ``if_match`` does not name its version.
        """
        contact = await self._lock_contact(contact_id, if_match)
        # The event carries the last state with the version a change would have given it, so
        # that consumers comparing versions apply the delete after every earlier event
        # (ContactDeleted.from_contact). Its last state is taken before the row is gone.
        last_state = ContactSnapshot.from_contact(contact)
        await self.session.delete(contact)
        await self.session.flush()
        deleted_at = await self.session.scalar(select(func.now()))
        assert deleted_at is not None
        await write_contact_event(self.session, ContactDeleted.from_contact(last_state, deleted_at))
        logger.info("Deleted contact: %s", contact_id)
        return contact

    async def _lock_contact(self, contact_id: int, if_match: IfMatch | None = None) -> Contact:
        """
        The contact as an ORM object, its row locked until the transaction ends. ``if_match``
        is checked under the lock: a concurrent change with the same If-Match waits for this
        transaction, then sees the new version (the check is atomic with the change).
        """
        statement = select(Contact).where(Contact.id == contact_id).with_for_update()
        contact = await self.session.scalar(statement)
        if contact is None:
            raise ContactNotFoundError(contact_id)
        if if_match is not None:
            if_match.check(contact.version)
        return contact

    async def _flush(self, email: str) -> None:
        try:
            await self.session.flush()
        except IntegrityError as error:
            self._raise_duplicate_email(error, email)

    @staticmethod
    def _raise_duplicate_email(error: IntegrityError, email: str) -> NoReturn:
        if _is_duplicate_email(error):
            raise DuplicateEmailError(email) from None
        raise error
