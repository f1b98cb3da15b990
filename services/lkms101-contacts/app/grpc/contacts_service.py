"""
================================================================
FILE: contacts_service.py
PATH: /services/lkms101-contacts/app/grpc/contacts_service.py
DESCRIPTION: gRPC servicer implementation for contacts (async, shares the app's database pool)
VERSION: v1.3.0
UPDATED: 2026-12-02 06:10:00
================================================================
"""

# === IMPORTS ===
import logging

import grpc

from app.database import Database
from app.grpc import contacts_pb2, contacts_pb2_grpc
from app.services.contacts_service import ContactNotFoundError, ContactRow, ContactsReader
from lkern_common.errors import BadRequestError
from lkern_common.grpc_auth import requires_scope

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# A batch larger than this is refused: it would be one huge query and one huge message.
MAX_BATCH_IDS = 1000
# ListContacts: a page when the caller names no size, and the most a page may hold.
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000

Context = grpc.aio.ServicerContext[object, object]


# === CONVERSION ===
def contact_to_proto(contact: ContactRow) -> contacts_pb2.Contact:
    """A contact row as the proto message (timestamps in ISO 8601, "" when absent)."""
    return contacts_pb2.Contact(
        id=contact.id,
        name=contact.name,
        email=contact.email,
        phone=contact.phone or "",
        is_active=contact.is_active,
        created_at=contact.created_at.isoformat(),
        updated_at=contact.updated_at.isoformat() if contact.updated_at else "",
        version=contact.version,
    )


# === SERVICER ===
# Each RPC declares the scope it needs (@requires_scope); the server refuses a method without
# one, and the authorisation interceptor checks the caller (lkern_common.grpc_auth).
class ContactsServicer(contacts_pb2_grpc.ContactsServiceServicer):
    """
    gRPC servicer for contacts operations. Every call only reads: one autocommit query on the
    shared pool (ContactsReader: no session, no BEGIN / COMMIT round trips); unexpected errors
    become INTERNAL with a generic message (the server's interceptor logs the details); domain
    errors raised here end the call with their gRPC code (the same interceptor).
    """

    def __init__(self, db: Database) -> None:
        self.contacts = ContactsReader(db)

    @requires_scope("contacts:read")
    async def GetContact(
        self, request: contacts_pb2.GetContactRequest, context: Context
    ) -> contacts_pb2.GetContactResponse:
        """Get contact by ID; NOT_FOUND with the standard's message when it does not exist."""
        contact = await self.contacts.find_contact(request.id)
        if contact is None:
            raise ContactNotFoundError(request.id)  # NOT_FOUND (the server's interceptor)
        logger.debug("gRPC: Retrieved contact %s", request.id)
        return contacts_pb2.GetContactResponse(contact=contact_to_proto(contact))

    @requires_scope("contacts:read")
    async def GetContactsByIds(
        self, request: contacts_pb2.GetContactsByIdsRequest, context: Context
    ) -> contacts_pb2.GetContactsByIdsResponse:
        """The contacts that exist among the ids (one query); over 1,000 ids → INVALID_ARGUMENT."""
        if len(request.ids) > MAX_BATCH_IDS:
            raise BadRequestError(f"At most {MAX_BATCH_IDS} ids per call (got {len(request.ids)})")
        contacts = await self.contacts.get_contacts_by_ids(list(request.ids))
        logger.debug("gRPC: Retrieved %d contacts", len(contacts))
        return contacts_pb2.GetContactsByIdsResponse(
            contacts=[contact_to_proto(contact) for contact in contacts]
        )

    @requires_scope("contacts:read")
    async def ValidateContact(
        self, request: contacts_pb2.ValidateContactRequest, context: Context
    ) -> contacts_pb2.ValidateContactResponse:
        """Validate that contact exists and is active (the reason in `error_message` if not)."""
        contact = await self.contacts.find_contact(request.id)
        if contact is None:
            return contacts_pb2.ValidateContactResponse(
                is_valid=False, error_message=ContactNotFoundError(request.id).message
            )
        if not contact.is_active:
            return contacts_pb2.ValidateContactResponse(
                is_valid=False, error_message=f"Contact {contact.id} is inactive"
            )
        logger.debug("gRPC: Validated contact %s", contact.id)
        return contacts_pb2.ValidateContactResponse(is_valid=True, error_message="")

    @requires_scope("contacts:read")
    async def ListContacts(
        self, request: contacts_pb2.ListContactsRequest, context: Context
    ) -> contacts_pb2.ListContactsResponse:
        """
        A page of every contact after ``after_id``, ordered by id; ``next_after_id`` is 0 on the
        last page. A negative id or a page over 1,000 → INVALID_ARGUMENT.
        """
        if request.after_id < 0:
            raise BadRequestError(f"after_id must be 0 or more (got {request.after_id})")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise BadRequestError(
                f"page_size must be 0 (the default, {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE} "
                f"(got {request.page_size})"
            )
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        contacts = await self.contacts.contacts_after(request.after_id, page_size)
        last_page = len(contacts) < page_size
        logger.debug("gRPC: Listed %d contacts after id %s", len(contacts), request.after_id)
        return contacts_pb2.ListContactsResponse(
            contacts=[contact_to_proto(contact) for contact in contacts],
            next_after_id=0 if last_page else contacts[-1].id,
        )
