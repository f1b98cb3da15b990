"""
================================================================
FILE: spec.py
PATH: /services/lkms101-contacts/app/spec.py
DESCRIPTION: The contacts service's declaration: its routers, gRPC servicer and published events
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Its identity (number, ports, database, scopes, topics) is the [tool.lkern] table of
pyproject.toml (lkern_common.registry); lkern_common.service.create_service_app runs the rest.
"""

# === IMPORTS ===
from collections.abc import Sequence
from pathlib import Path

from app.config import Settings
from app.grpc import contacts_pb2_grpc
from app.grpc.contacts_service import ContactsServicer
from app.routers import contacts
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_common.registry import load_service_entry
from lkern_common.service import GrpcServicer, ServiceContext, ServiceSpec

# === CONSTANTS ===
GRPC_SERVICE_NAME = "contacts.ContactsService"


# === PARTS ===
def published_topics(settings: Settings) -> Sequence[str]:
    """lkern.contacts.created|updated|deleted (docs/events.md)."""
    return CONTACT_TOPICS


def contacts_servicer(context: ServiceContext[Settings]) -> ContactsServicer:
    return ContactsServicer(context.db)


# === SPEC ===
SPEC: ServiceSpec[Settings] = ServiceSpec(
    entry=load_service_entry(Path(__file__).resolve().parents[1]),
    routers=[contacts.router],
    published_topics=published_topics,
    grpc_servicers=[
        GrpcServicer(
            GRPC_SERVICE_NAME,
            contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
            contacts_servicer,
        )
    ],
)
