"""
================================================================
FILE: read_models.py
PATH: /services/lkms102-orders/app/routers/read_models.py
DESCRIPTION: FastAPI router for orders' read models: rebuild the contacts read model on demand
VERSION: v1.0.0
UPDATED: 2026-12-02 06:20:00
================================================================
"""

# === IMPORTS ===
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.services.contacts_resync import ContactsResync
from lkern_common.auth import LKERN_ADMIN
from lkern_common.errors import ServiceUnavailableError
from lkern_common.grpc_clients.contacts import ContactsClientError
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires

# === ROUTER ===
router = APIRouter(prefix="/read-models", tags=["read models"], route_class=ApiRoute)

# === CONSTANTS ===
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The contacts service is unavailable; what was applied stays"}
}


# === SCHEMAS ===
class ResyncResponse(BaseModel):
    """What a resync did."""

    contacts: int = Field(description="Contacts listed by lkms101-contacts")
    changed: int = Field(description="Read-model rows that were missing or older, now updated")
    deleted: int = Field(description="Rows of contacts that no longer exist, marked deleted")
    seconds: float = Field(description="How long the resync took")


# === RESYNC ===
@router.post(
    "/contacts/resync",
    response_model=ResyncResponse,
    responses=UNAVAILABLE,
    dependencies=[requires(LKERN_ADMIN)],
)
async def resync_contacts(request: Request) -> ResyncResponse:
    """
    Rebuild the contacts read model from lkms101-contacts (every contact, under the same
    version guard as contact events: a newer row is never overwritten). Answers when done.
    An operator's action (scope lkern:admin): it reads every contact, which no user of the
    orders API should be able to trigger at will.
    """
    resync: ContactsResync = request.app.state.contacts_resync
    try:
        result = await resync.run()
    except ContactsClientError as error:
        raise ContactsResyncUnavailableError() from error
    return ResyncResponse(
        contacts=result.contacts,
        changed=result.changed,
        deleted=result.deleted,
        seconds=result.seconds,
    )


# === ERRORS ===
class ContactsResyncUnavailableError(ServiceUnavailableError):
    """lkms101-contacts could not be read: 503."""

    def __init__(self) -> None:
        super().__init__(
            "The contacts service is unavailable, so the contacts read model cannot be "
            "resynced now; what was applied stays. Try again later."
        )
