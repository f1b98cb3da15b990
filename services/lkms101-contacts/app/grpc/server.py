"""
================================================================
FILE: server.py
PATH: /services/lkms101-contacts/app/grpc/server.py
DESCRIPTION: gRPC server setup for contacts service (health, reflection, shared pool)
VERSION: v1.1.0
UPDATED: 2026-12-02 03:20:00
================================================================
"""

# === IMPORTS ===
from app.config import Settings
from app.database import Database
from app.grpc import contacts_pb2_grpc
from app.grpc.contacts_service import ContactsServicer
from lkern_common.auth import TokenVerifier
from lkern_common.grpc_server import GrpcServer, start_service_grpc_server

# === CONSTANTS ===
SERVICE_NAME = "contacts.ContactsService"


# === SERVER ===
async def start_grpc_server(
    settings: Settings, db: Database, token_verifier: TokenVerifier
) -> GrpcServer:
    """
    The contacts gRPC server on GRPC_HOST:GRPC_PORT (5101), sharing the app's pool. Health
    reports SERVING only while the database answers; reflection lists the service. Callers
    are services with a client certificate (GRPC_CLIENT_SCOPES) or bearer tokens checked by
    ``token_verifier`` (the app's REST verifier).
    """
    return await start_service_grpc_server(
        settings,
        db,
        contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
        ContactsServicer(db),
        SERVICE_NAME,
        token_verifier=token_verifier,
    )
