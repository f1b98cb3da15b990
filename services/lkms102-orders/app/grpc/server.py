"""
================================================================
FILE: server.py
PATH: /services/lkms102-orders/app/grpc/server.py
DESCRIPTION: gRPC server setup for orders service (health, reflection, shared pool)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from app.config import Settings
from app.database import Database
from app.grpc import orders_pb2_grpc
from app.grpc.orders_service import OrdersServicer
from lkern_common.grpc_server import GrpcServer

# === CONSTANTS ===
SERVICE_NAME = "orders.OrdersService"
HEALTH_CHECK_INTERVAL_SECONDS = 5.0


# === SERVER ===
def create_grpc_server(settings: Settings, db: Database) -> GrpcServer:
    """
    The orders gRPC server on GRPC_HOST:GRPC_PORT (5102). Health reports SERVING only while
    the database answers; reflection lists the service for grpcurl-style tools.
    """
    server = GrpcServer(
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.grpc_grace_seconds,
    )
    server.add_servicer(
        orders_pb2_grpc.add_OrdersServiceServicer_to_server, OrdersServicer(db), SERVICE_NAME
    )
    return server


async def start_grpc_server(settings: Settings, db: Database) -> GrpcServer:
    """Build and start the server, and keep its health in step with the database."""
    server = create_grpc_server(settings, db)
    await server.start(serving=await db.ping())
    server.health_watch(db.ping, HEALTH_CHECK_INTERVAL_SECONDS)
    return server
