"""
================================================================
FILE: orders.py
PATH: /services/lkms102-orders/app/routers/orders.py
DESCRIPTION: FastAPI router for orders endpoints (CRUD, status changes)
VERSION: v1.6.0
UPDATED: 2026-12-02 07:05:00
================================================================
"""

# === IMPORTS ===
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import TypeAdapter

from app.data.orders import OrderView
from app.database import Database, DatabaseDep, SessionDep
from app.schemas.order import (
    ContactSummary,
    OrderCreate,
    OrderLineResponse,
    OrderResponse,
    OrderStatusChange,
    OrderUpdate,
)
from app.services.contact_directory import ContactDirectory
from app.services.order_status import OrderStatus, check_transition
from app.services.orders_service import (
    ContactCheck,
    OrdersReader,
    OrdersService,
    check_contact,
)
from lkern_common.auth import ORDERS_READ, ORDERS_WRITE
from lkern_common.database import INT32_MAX
from lkern_common.idempotency import (
    IDEMPOTENCY_RESPONSES,
    IdempotencyRequestDep,
    json_response,
)
from lkern_common.web.conditional import (
    ETAG_RESPONSE_HEADER,
    NOT_MODIFIED_RESPONSE,
    PRECONDITION_RESPONSES,
    IfMatch,
    IfMatchDep,
    IfNoneMatchHeader,
    not_modified,
    set_etag,
)
from lkern_common.web.openapi import LIST_RESPONSES, UNAVAILABLE
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires

# === ROUTER ===
router = APIRouter(prefix="/orders", tags=["orders"], route_class=ApiRoute)

# === CONSTANTS ===
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Order not found"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The order's status does not allow this (the message names it)"}
}
CONTACT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The contact is unknown, inactive or deleted (reason from contacts)"},
    503: {
        "description": "The contacts service (or the database) is unavailable; nothing was "
        "changed. `Retry-After` says when to try again",
        "headers": {"Retry-After": UNAVAILABLE["headers"]["Retry-After"]},
    },
}
WITH_ETAG: dict[int | str, dict[str, Any]] = {200: {"headers": ETAG_RESPONSE_HEADER}}
OrderId = Annotated[int, Path(ge=1, le=INT32_MAX, description="Order ID")]
JSON = "application/json"
ORDER_LIST = TypeAdapter(list[OrderResponse])


# === DEPENDENCIES ===
async def get_orders_service(session: SessionDep) -> OrdersService:
    """The orders service bound to this request's transaction."""
    return OrdersService(session)


async def get_contact_directory(request: Request) -> ContactDirectory:
    """Contacts as orders asks it (the app's client: deadline, retries, circuit breaker)."""
    return ContactDirectory(request.app.state.contacts_client)


# Each route declares the scope it needs in its decorator (`requires`): reads orders:read,
# changes orders:write. A route without one makes the app refuse to start.
ServiceDep = Annotated[OrdersService, Depends(get_orders_service)]
ContactsDep = Annotated[ContactDirectory, Depends(get_contact_directory)]


# Read routes resolve no dependency but the token check: the reader is built from the app's
# Database (no I/O), and the answer is the response model serialised once by pydantic-core
# (`response_model` only documents it: FastAPI does not validate a returned Response again).
def _reader(request: Request) -> OrdersReader:
    db: Database = request.app.state.db
    return OrdersReader(db)


# === CONVERSION ===
def order_response(view: OrderView) -> OrderResponse:
    """An order with its contact as the REST response."""
    return OrderResponse(
        id=view.id,
        number=view.number,
        status=view.status,
        currency=view.currency,
        lines=[
            OrderLineResponse(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
            )
            for line in view.lines
        ],
        total=view.total,
        notes=view.notes,
        contact=ContactSummary(
            id=view.contact_id, name=view.contact_name, email=view.contact_email
        ),
        created_at=view.created_at,
        updated_at=view.updated_at,
        version=view.version,
        created_by=view.created_by,
        updated_by=view.updated_by,
        status_changed_by=view.status_changed_by,
        status_changed_at=view.status_changed_at,
    )


# === GET ALL ORDERS ===
@router.get(
    "/",
    response_model=list[OrderResponse],
    responses=LIST_RESPONSES,
    dependencies=[requires(ORDERS_READ)],
)
async def get_orders(
    request: Request,
    skip: int = Query(0, ge=0, le=INT32_MAX, description="Number of records to skip"),
    limit: int = Query(100, ge=1, le=1000, description="Max records to return"),
    contact_id: int | None = Query(
        None, ge=1, le=INT32_MAX, description="Only orders of this contact"
    ),
    status: OrderStatus | None = Query(None, description="Only orders in this status"),
) -> Response:
    """
    Get list of orders ordered by id, with optional filtering and pagination.
    The number of all matching orders is in the `X-Total-Count` header.
    """
    views, total = await _reader(request).list_orders(
        skip=skip, limit=limit, contact_id=contact_id, status=status
    )
    content = ORDER_LIST.dump_json([order_response(view) for view in views])
    return Response(content, headers={"X-Total-Count": str(total)}, media_type=JSON)


# === GET ORDER BY ID ===
@router.get(
    "/{order_id}",
    response_model=OrderResponse,
    responses={**WITH_ETAG, **NOT_MODIFIED_RESPONSE, **NOT_FOUND},
    dependencies=[requires(ORDERS_READ)],
)
async def get_order(
    order_id: OrderId, request: Request, if_none_match: IfNoneMatchHeader = None
) -> Response:
    """Get order by ID (404 when it does not exist; 304 when `If-None-Match` is current)."""
    view = await _reader(request).get_order_view(order_id)
    if (unchanged := not_modified(if_none_match, view.version)) is not None:
        return unchanged
    response = Response(order_response(view).model_dump_json(), media_type=JSON)
    set_etag(response, view.version)
    return response


# === CREATE ORDER ===
@router.post(
    "/",
    response_model=OrderResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"headers": ETAG_RESPONSE_HEADER},
        **CONTACT_ERRORS,
        **IDEMPOTENCY_RESPONSES,
    },
    dependencies=[requires(ORDERS_WRITE)],
)
async def create_order(
    order: OrderCreate, db: DatabaseDep, contacts: ContactsDep, idempotency: IdempotencyRequestDep
) -> Response:
    """
    Create a draft order for a contact validated by lkms101-contacts: the service assigns the
    number, computes line totals and the total (400 for an unknown, inactive or deleted
    contact; 503 with `Retry-After` when contacts cannot be reached). With an
    `Idempotency-Key`, a retry gets the first answer again and never creates a second order.
    """
    # A retry of a finished request is answered without asking contacts.
    if (replayed := await idempotency.stored_answer(db, order)) is not None:
        return replayed
    # Contacts answers before the transaction starts: no pooled connection waits for it.
    checked = await check_contact(db, contacts, order.contact_id)
    async with db.transaction() as session:
        keyed = idempotency.bind(session)
        if (replayed := await keyed.replay(order)) is not None:
            return replayed
        answer = order_response(await OrdersService(session).create_order(order, checked))
        return await keyed.save(json_response(answer, status.HTTP_201_CREATED, answer.version))


# === UPDATE ORDER ===
@router.put(
    "/{order_id}",
    response_model=OrderResponse,
    responses={**WITH_ETAG, **NOT_FOUND, **CONFLICT, **PRECONDITION_RESPONSES},
    dependencies=[requires(ORDERS_WRITE)],
)
async def update_order(
    order_id: OrderId,
    order: OrderUpdate,
    service: ServiceDep,
    if_match: IfMatchDep,
    response: Response,
) -> OrderResponse:
    """
    Edit a draft: `lines` replaces all lines, `notes` the notes (409 unless draft, 412 when
    `If-Match` is stale).
    """
    answer = order_response(await service.update_order(order_id, order, if_match))
    set_etag(response, answer.version)
    return answer


# === CHANGE STATUS ===
@router.post(
    "/{order_id}/status",
    response_model=OrderResponse,
    responses={
        **WITH_ETAG,
        **NOT_FOUND,
        **CONFLICT,
        **CONTACT_ERRORS,
        **PRECONDITION_RESPONSES,
        **IDEMPOTENCY_RESPONSES,
    },
    dependencies=[requires(ORDERS_WRITE)],
)
async def change_order_status(
    order_id: OrderId,
    change: OrderStatusChange,
    db: DatabaseDep,
    contacts: ContactsDep,
    if_match: IfMatchDep,
    idempotency: IdempotencyRequestDep,
) -> Response:
    """
    Change the status: draft → confirmed → fulfilled, draft|confirmed → cancelled; anything
    else is 409 naming the current status (412 when `If-Match` is stale). Confirming
    validates the contact again. With an `Idempotency-Key`, a retry gets the first answer.
    """
    if (replayed := await idempotency.stored_answer(db, change)) is not None:
        return replayed
    checked = await _confirmable_contact(db, contacts, order_id, change.status, if_match)
    async with db.transaction() as session:
        keyed = idempotency.bind(session)
        if (replayed := await keyed.replay(change)) is not None:
            return replayed
        view = await OrdersService(session).change_status(
            order_id, change.status, if_match, contact_check=checked
        )
        answer = order_response(view)
        return await keyed.save(json_response(answer, status.HTTP_200_OK, answer.version))


async def _confirmable_contact(
    db: Database,
    contacts: ContactDirectory,
    order_id: int,
    target: OrderStatus,
    if_match: IfMatch | None,
) -> ContactCheck | None:
    """
    For a confirmation: contacts' check of the order's contact, asked before the transaction
    (404, 412 and 409 are answered first, without asking contacts). None for other targets.
    """
    if target != OrderStatus.CONFIRMED:
        return None
    current = await OrdersReader(db).get_order_view(order_id)
    if if_match is not None:
        if_match.check(current.version)  # checked again under the row lock
    check_transition(current.number, current.status, target)
    return await check_contact(db, contacts, current.contact_id)


# === DELETE ORDER ===
@router.delete(
    "/{order_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **CONFLICT, **PRECONDITION_RESPONSES},
    dependencies=[requires(ORDERS_WRITE)],
)
async def delete_order(order_id: OrderId, service: ServiceDep, if_match: IfMatchDep) -> None:
    """Delete a draft order (409 for any other status: cancel it instead; 412 when stale)."""
    await service.delete_order(order_id, if_match)
