"""
================================================================
FILE: contacts.py
PATH: /services/lkms101-contacts/app/routers/contacts.py
DESCRIPTION: FastAPI router for contacts endpoints (CRUD operations)
VERSION: v1.3.0
UPDATED: 2026-12-02 06:20:00
================================================================
"""

# === IMPORTS ===
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.database import DatabaseDep, SessionDep
from app.models.contact import Contact
from app.schemas.contact import ContactCreate, ContactResponse, ContactUpdate
from app.services.contacts_service import ContactRow, ContactsReader, ContactsService, NewContact
from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE
from lkern_common.database import INT32_MAX
from lkern_common.idempotency import IDEMPOTENCY_RESPONSES, IdempotencyDep, json_response
from lkern_common.web.conditional import (
    ETAG_RESPONSE_HEADER,
    NOT_MODIFIED_RESPONSE,
    PRECONDITION_RESPONSES,
    IfMatchDep,
    IfNoneMatchHeader,
    not_modified,
    set_etag,
)
from lkern_common.web.inputs import Text
from lkern_common.web.openapi import LIST_RESPONSES
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires

# === ROUTER ===
router = APIRouter(prefix="/contacts", tags=["contacts"], route_class=ApiRoute)

# === CONSTANTS ===
ERROR_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "Contact not found"},
}
ContactId = Annotated[int, Path(ge=1, le=INT32_MAX, description="Contact ID")]


# === DEPENDENCIES ===
async def get_contacts_service(session: SessionDep) -> ContactsService:
    """The contacts service bound to this request's transaction."""
    return ContactsService(session)


async def get_contacts_reader(db: DatabaseDep) -> ContactsReader:
    """The contacts reads for a route that only reads (no session, no transaction)."""
    return ContactsReader(db)


ServiceDep = Annotated[ContactsService, Depends(get_contacts_service)]
ReaderDep = Annotated[ContactsReader, Depends(get_contacts_reader)]

# Each route declares the scope it needs in its decorator (`requires`): reads contacts:read,
# changes contacts:write. A route without one makes the app refuse to start.
# Routes return the contact (a record, or the ORM object after a change); FastAPI validates and
# serialises it once, as `response_model` (ContactResponse).


# === GET ALL CONTACTS ===
@router.get(
    "/",
    response_model=list[ContactResponse],
    responses=LIST_RESPONSES,
    dependencies=[requires(CONTACTS_READ)],
)
async def get_contacts(
    reader: ReaderDep,
    response: Response,
    skip: int = Query(0, ge=0, le=INT32_MAX, description="Number of records to skip"),
    limit: int = Query(100, ge=1, le=1000, description="Max records to return"),
    is_active: bool | None = Query(None, description="Filter by active status"),
    q: Text | None = Query(
        None, max_length=255, description="Search name and email (case-insensitive substring)"
    ),
) -> Sequence[ContactRow]:
    """
    Get list of contacts ordered by id, with optional filtering and pagination.
    The number of all matching contacts is in the `X-Total-Count` header.
    """
    contacts, total = await reader.list_contacts(skip=skip, limit=limit, is_active=is_active, q=q)
    response.headers["X-Total-Count"] = str(total)
    return contacts


# === GET CONTACT BY ID ===
@router.get(
    "/{contact_id}",
    response_model=ContactResponse,
    responses={200: {"headers": ETAG_RESPONSE_HEADER}, **NOT_MODIFIED_RESPONSE, **ERROR_RESPONSES},
    dependencies=[requires(CONTACTS_READ)],
)
async def get_contact(
    contact_id: ContactId,
    reader: ReaderDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> ContactRow | Response:
    """Get contact by ID (404 when it does not exist; 304 when `If-None-Match` is current)."""
    contact = await reader.get_contact(contact_id)
    if (unchanged := not_modified(if_none_match, contact.version)) is not None:
        return unchanged
    set_etag(response, contact.version)
    return contact


# === CREATE CONTACT ===
@router.post(
    "/",
    response_model=ContactResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": ETAG_RESPONSE_HEADER},
        400: {"description": "Email already exists"},
        **IDEMPOTENCY_RESPONSES,
    },
    dependencies=[requires(CONTACTS_WRITE)],
)
async def create_contact(
    contact: ContactCreate, service: ServiceDep, idempotency: IdempotencyDep
) -> Response:
    """
    Create new contact (400 when another contact has the same email). With an
    `Idempotency-Key`, a retry gets the first answer again.
    """
    if (replayed := await idempotency.replay(contact)) is not None:
        return replayed
    created: NewContact = await service.create_contact(contact)
    answer = ContactResponse.model_validate(created)
    return await idempotency.save(json_response(answer, status.HTTP_201_CREATED, created.version))


# === UPDATE CONTACT ===
@router.put(
    "/{contact_id}",
    response_model=ContactResponse,
    responses={
        200: {"headers": ETAG_RESPONSE_HEADER},
        **ERROR_RESPONSES,
        400: {"description": "Email already exists"},
        **PRECONDITION_RESPONSES,
    },
    dependencies=[requires(CONTACTS_WRITE)],
)
async def update_contact(
    contact_id: ContactId,
    contact: ContactUpdate,
    service: ServiceDep,
    if_match: IfMatchDep,
    response: Response,
) -> Contact:
    """Update contact: only the fields sent are changed (412 when `If-Match` is stale)."""
    updated, _changed = await service.update_contact(contact_id, contact, if_match)
    set_etag(response, updated.version)
    return updated


# === DELETE CONTACT ===
@router.delete(
    "/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERROR_RESPONSES, **PRECONDITION_RESPONSES},
    dependencies=[requires(CONTACTS_WRITE)],
)
async def delete_contact(contact_id: ContactId, service: ServiceDep, if_match: IfMatchDep) -> None:
    """Delete contact (hard delete; 412 when `If-Match` is stale)."""
    await service.delete_contact(contact_id, if_match)
