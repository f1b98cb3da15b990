"""
================================================================
FILE: contacts_service.py
PATH: /services/lkms101-contacts/app/services/contacts_service.py
DESCRIPTION: Contacts business logic: reads (ContactsReader), changes with events (ContactsService)
VERSION: v1.6.0
UPDATED: 2026-12-02 06:20:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence
from typing import Any, NoReturn, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Row,
    Table,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.contact import Contact
from app.outbox_events import write_contact_event
from app.schemas.contact import ContactCreate, ContactUpdate
from lkern_common.contracts.contacts import (
    ContactCreated,
    ContactDeleted,
    ContactSnapshot,
    ContactUpdated,
)
from lkern_common.database import Database, Query, Record
from lkern_common.errors import BadRequestError, NotFoundError
from lkern_common.request_context import get_subject
from lkern_common.web.conditional import IfMatch

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
EMAIL_INDEX = "ix_contacts_email"

# === READS ===
# Reads return records of the contacts table (attribute access as on the model: row.id,
# row.name…), read straight from the driver (Database.fetch_one / fetch_all): a response or a
# gRPC message is built from them once; neither ORM objects nor SQLAlchemy's execution layer
# are needed to read a row (docs/performance.md).
ContactRow = Record
CONTACTS = cast(Table, Contact.__table__)
# The hottest reads (GET by id, gRPC GetContact / ValidateContact / GetContactsByIds), compiled
# once.
CONTACT_BY_ID = Query(select(CONTACTS).where(CONTACTS.c.id == bindparam("contact_id")))
# A new contact is one Core INSERT … RETURNING (an ORM object and its unit-of-work flush cost
# ~0.5 ms more per create); changes of existing contacts use the ORM (lock, compare, flush).
NewContact = Row[Any]
INSERT_CONTACT = insert(CONTACTS).returning(CONTACTS)
CONTACTS_BY_IDS = Query(
    select(CONTACTS)
    .where(CONTACTS.c.id == any_(bindparam("contact_ids", type_=ARRAY(Integer))))
    .order_by(CONTACTS.c.id)
)
# Every contact a page at a time (gRPC ListContacts): keyset on the primary key, so a page
# costs the same wherever it starts and contacts created meanwhile are not skipped.
CONTACTS_AFTER_ID = Query(
    select(CONTACTS)
    .where(CONTACTS.c.id > bindparam("after_id"))
    .order_by(CONTACTS.c.id)
    .limit(bindparam("page_size"))
)


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


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _list_filters(is_active: bool | None, q: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if is_active is not None:
        filters.append(Contact.is_active.is_(is_active))
    if q:
        pattern = f"%{_escape_like(q)}%"
        filters.append(
            or_(Contact.name.ilike(pattern, escape="\\"), Contact.email.ilike(pattern, escape="\\"))
        )
    return filters


# === READER ===
class ContactsReader:
    """Contacts reads: each one query in autocommit, no transaction, no ORM objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_contact(self, contact_id: int) -> ContactRow:
        """The contact, or ContactNotFoundError."""
        contact = await self.find_contact(contact_id)
        if contact is None:
            raise ContactNotFoundError(contact_id)
        return contact

    async def find_contact(self, contact_id: int) -> ContactRow | None:
        """The contact, or None."""
        return await self.db.fetch_one(CONTACT_BY_ID, contact_id=contact_id)

    async def get_contacts_by_ids(self, contact_ids: Sequence[int]) -> Sequence[ContactRow]:
        """The contacts that exist among ``contact_ids``, in one query, ordered by id."""
        if not contact_ids:
            return []
        return await self.db.fetch_all(CONTACTS_BY_IDS, contact_ids=sorted(set(contact_ids)))

    async def contacts_after(self, after_id: int, page_size: int) -> Sequence[ContactRow]:
        """Up to ``page_size`` contacts with an id greater than ``after_id``, ordered by id."""
        return await self.db.fetch_all(CONTACTS_AFTER_ID, after_id=after_id, page_size=page_size)

    async def list_contacts(
        self, *, skip: int, limit: int, is_active: bool | None = None, q: str | None = None
    ) -> tuple[Sequence[ContactRow], int]:
        """A page of contacts ordered by id, and the number of all contacts that match."""
        filters = _list_filters(is_active, q)
        page = select(CONTACTS).where(*filters).order_by(CONTACTS.c.id).offset(skip).limit(limit)
        contacts = await self.db.fetch_all(Query(page))
        if skip == 0 and len(contacts) < limit:
            total = len(contacts)  # the whole result fits in this page: no count query needed
        else:
            count = select(func.count().label("total")).select_from(CONTACTS).where(*filters)
            row = await self.db.fetch_one(Query(count))
            total = row.total if row is not None else 0
        return contacts, total


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
    async def create_contact(self, data: ContactCreate) -> NewContact:
        """Create a contact (and its ContactCreated event); DuplicateEmailError when taken."""
        connection = await self.session.connection()
        try:
            values = {**data.model_dump(), "created_by": get_subject()}
            result = await connection.execute(INSERT_CONTACT, values)
            contact: NewContact = result.one()
        except IntegrityError as error:
            self._raise_duplicate_email(error, data.email)
        await write_contact_event(self.session, ContactCreated.from_contact(contact))
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
