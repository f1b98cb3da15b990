"""
================================================================
FILE: contacts.py
PATH: /services/lkms101-contacts/app/routers/contacts.py
DESCRIPTION: FastAPI router for contacts endpoints (CRUD operations)
VERSION: v1.5.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""

# === IMPORTS ===
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from app.data.contacts import ContactView, contact_json
from app.database import Database, SessionDep
from app.models.contact import Contact
from app.schemas.contact import ContactCreate, ContactResponse, ContactUpdate
from app.services.contacts_service import ContactsReader, ContactsService
from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE
from lkern_common.database import INT32_MAX
from lkern_common.idempotency import IDEMPOTENCY_RESPONSES, IdempotencyRequestDep
from lkern_common.web.conditional import (
    ETAG_HEADER,
    ETAG_RESPONSE_HEADER,
    NOT_MODIFIED_RESPONSE,
    PRECONDITION_RESPONSES,
    IfMatchDep,
    IfNoneMatchHeader,
    etag,
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
JSON = "application/json"


# === DEPENDENCIES ===
async def get_contacts_service(session: SessionDep) -> ContactsService:
    """The contacts service bound to this request's transaction."""
    return ContactsService(session)


ServiceDep = Annotated[ContactsService, Depends(get_contacts_service)]

# Each route declares the scope it needs in its decorator (`requires`): reads contacts:read,
# changes contacts:write. A route without one makes the app refuse to start.
#
# Hot routes (GET, list, create) resolve no dependency but the token check: they take the
# request and build their reader from the app's Database (a plain object, no I/O), read typed
# views (ContactView) on asyncpg and answer with the view serialised once by orjson
# (contact_json); `response_model` only documents the answer (FastAPI does not validate a
# returned Response again). Changes of existing contacts return the ORM object, which FastAPI
# validates and serialises as ContactResponse.


# === HELPERS ===
def _reader(request: Request) -> ContactsReader:
    db: Database = request.app.state.db
    return ContactsReader(db)


def _contact_answer(contact: ContactView, status_code: int = status.HTTP_200_OK) -> Response:
    """The contact as JSON with its ETag."""
    return Response(
        contact_json(contact),
        status_code,
        headers={ETAG_HEADER: etag(contact.version)},
        media_type=JSON,
    )


# === GET ALL CONTACTS ===
@router.get(
    "/",
    response_model=list[ContactResponse],
    responses=LIST_RESPONSES,
    dependencies=[requires(CONTACTS_READ)],
)
async def get_contacts(
    request: Request,
    skip: int = Query(0, ge=0, le=INT32_MAX, description="Number of records to skip"),
    limit: int = Query(100, ge=1, le=1000, description="Max records to return"),
    is_active: bool | None = Query(None, description="Filter by active status"),
    q: Text | None = Query(
        None, max_length=255, description="Search name and email (case-insensitive substring)"
    ),
) -> Response:
    """
    Get list of contacts ordered by id, with optional filtering and pagination.
    The number of all matching contacts is in the `X-Total-Count` header (always exact).
    """
    contacts, total = await _reader(request).list_contacts(
        skip=skip, limit=limit, is_active=is_active, q=q
    )
    return Response(contact_json(contacts), headers={"X-Total-Count": str(total)}, media_type=JSON)


# === GET CONTACT BY ID ===
@router.get(
    "/{contact_id}",
    response_model=ContactResponse,
    responses={200: {"headers": ETAG_RESPONSE_HEADER}, **NOT_MODIFIED_RESPONSE, **ERROR_RESPONSES},
    dependencies=[requires(CONTACTS_READ)],
)
async def get_contact(
    contact_id: ContactId, request: Request, if_none_match: IfNoneMatchHeader = None
) -> Response:
    """Get contact by ID (404 when it does not exist; 304 when `If-None-Match` is current)."""
    contact = await _reader(request).get_contact(contact_id)
    if (unchanged := not_modified(if_none_match, contact.version)) is not None:
        return unchanged
    return _contact_answer(contact)


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
    contact: ContactCreate, request: Request, idempotency: IdempotencyRequestDep
) -> Response:
    """
    Create new contact (400 when another contact has the same email). With an
    `Idempotency-Key`, a retry gets the first answer again.
    """
    if idempotency.key is None:  # one statement, committed on its own: no session
        return _contact_answer(await _reader(request).create_contact(contact), 201)
    # The stored answer and the contact commit together, in one transaction.
    db: Database = request.app.state.db
    async with db.transaction() as session:
        bound = idempotency.bind(session)
        if (replayed := await bound.replay(contact)) is not None:
            return replayed
        created = await ContactsService(session).create_contact(contact)
        return await bound.save(_contact_answer(created, 201))


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
