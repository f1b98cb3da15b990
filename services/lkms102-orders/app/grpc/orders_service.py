"""
================================================================
FILE: orders_service.py
PATH: /services/lkms102-orders/app/grpc/orders_service.py
DESCRIPTION: gRPC servicer implementation for orders (async, shares the app's database pool)
VERSION: v1.2.0
UPDATED: 2026-12-02 07:05:00
================================================================
"""

# === IMPORTS ===
import logging

import grpc

from app.data.orders import OrderView
from app.database import Database
from app.grpc import orders_pb2, orders_pb2_grpc
from app.services.money import format_decimal
from app.services.orders_service import OrdersReader
from lkern_common.errors import BadRequestError
from lkern_common.grpc_auth import requires_scope

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Context = grpc.aio.ServicerContext[object, object]


# === CONVERSION ===
def order_to_proto(view: OrderView) -> orders_pb2.Order:
    """An order as the proto message (money as decimal strings, timestamps ISO 8601)."""
    return orders_pb2.Order(
        id=view.id,
        number=view.number,
        status=view.status.value,
        currency=view.currency,
        lines=[
            orders_pb2.OrderLine(
                description=line.description,
                quantity=format_decimal(line.quantity),
                unit_price=format_decimal(line.unit_price),
                line_total=format_decimal(line.line_total),
            )
            for line in view.lines
        ],
        total=format_decimal(view.total),
        notes=view.notes or "",
        contact=orders_pb2.OrderContact(
            id=view.contact_id, name=view.contact_name, email=view.contact_email
        ),
        created_at=view.created_at.isoformat(),
        updated_at=view.updated_at.isoformat() if view.updated_at else "",
        version=view.version,
    )


# === SERVICER ===
# Each RPC declares the scope it needs (@requires_scope); the server refuses a method without
# one, and the authorisation interceptor checks the caller (lkern_common.grpc_auth).
class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    """
    gRPC servicer for orders (reads only). Each call reads in autocommit on the shared pool
    (OrdersReader: no session, no BEGIN / COMMIT round trips); unexpected errors become
    INTERNAL with a generic message (the server's interceptor logs the details).
    """

    def __init__(self, db: Database) -> None:
        self.orders = OrdersReader(db)

    @requires_scope("orders:read")
    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: Context
    ) -> orders_pb2.GetOrderResponse:
        """Get order by ID; NOT_FOUND when it does not exist."""
        # OrderNotFoundError ends the call with NOT_FOUND (the server's interceptor).
        view = await self.orders.get_order_view(request.id)
        logger.debug("gRPC: Retrieved order %s", request.id)
        return orders_pb2.GetOrderResponse(order=order_to_proto(view))

    @requires_scope("orders:read")
    async def GetOrdersByContact(
        self, request: orders_pb2.GetOrdersByContactRequest, context: Context
    ) -> orders_pb2.GetOrdersByContactResponse:
        """A page of the contact's orders by id; bad paging → INVALID_ARGUMENT."""
        limit = request.limit or DEFAULT_LIMIT
        if request.skip < 0 or not 1 <= limit <= MAX_LIMIT:
            raise BadRequestError(
                f"skip must be >= 0 and limit between 1 and {MAX_LIMIT} "
                f"(got skip={request.skip}, limit={request.limit})",
            )
        views, total = await self.orders.get_orders_by_contact(
            request.contact_id, skip=request.skip, limit=limit
        )
        logger.debug("gRPC: Retrieved %d orders of contact %s", len(views), request.contact_id)
        return orders_pb2.GetOrdersByContactResponse(
            orders=[order_to_proto(view) for view in views], total=total
        )
