"""
================================================================
FILE: spec.py
PATH: /services/lkms102-orders/app/spec.py
DESCRIPTION: The orders service's declaration: routers, gRPC, events, contacts client, resync
VERSION: v1.1.0
UPDATED: 2026-12-02 06:45:00
================================================================

Its identity (number, ports, database, scopes, topics, the services it calls and whose events
it consumes) is the [tool.lkern] table of pyproject.toml (lkern_common.registry);
lkern_common.service.create_service_app runs the rest.
"""

# === IMPORTS ===
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from app.config import Settings
from app.grpc import orders_pb2_grpc
from app.grpc.orders_service import OrdersServicer
from app.kafka.consumer import create_contact_events_consumer
from app.routers import orders, read_models
from app.services.contacts_resync import ContactsResync, history_missing
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_common.contracts.orders import ORDER_TOPICS
from lkern_common.grpc_clients.contacts import AsyncContactsClient
from lkern_common.kafka.consumer import IdempotentConsumer
from lkern_common.registry import load_service_entry
from lkern_common.service import (
    EventConsumer,
    GrpcServicer,
    LifespanHook,
    ServiceContext,
    ServiceSpec,
)

# === CONSTANTS ===
GRPC_SERVICE_NAME = "orders.OrdersService"
# How long start-up waits for the broker to say whether it holds the consumer group's offsets.
OFFSETS_CHECK_TIMEOUT_S = 10.0


# === PARTS ===
def published_topics(settings: Settings) -> Sequence[str]:
    """lkern.orders.* and the dead-letter topic of contact events (docs/events.md)."""
    return (*ORDER_TOPICS, settings.kafka_dlq_topic)


@asynccontextmanager
async def contacts_client(context: ServiceContext[Settings]) -> AsyncIterator[AsyncContactsClient]:
    """The contacts gRPC client the routers validate contacts with (app.state.contacts_client)."""
    client = AsyncContactsClient(settings=context.settings.contacts_client_settings())
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def contacts_resync(context: ServiceContext[Settings]) -> AsyncIterator[ContactsResync]:
    """Rebuilds the contacts read model from contacts (app.services.contacts_resync)."""
    resync = ContactsResync(context.db, context.app.state.contacts_client)
    try:
        yield resync
    finally:
        await resync.stop()


async def resync_without_history(context: ServiceContext[Settings]) -> None:
    """
    Asked before the consumer commits anything: no committed offsets means the broker lost (or
    never had) the events this read model was built from, so the read model is rebuilt.
    """
    settings = context.settings
    if await history_missing(
        settings, settings.kafka_consumer_group_id, CONTACT_TOPICS, OFFSETS_CHECK_TIMEOUT_S
    ):
        context.app.state.contacts_resync.start(
            "no committed offsets for its consumer group on this broker"
        )


def orders_servicer(context: ServiceContext[Settings]) -> OrdersServicer:
    return OrdersServicer(context.db)


def contact_events_consumer(context: ServiceContext[Settings]) -> IdempotentConsumer:
    """Contact events into the read model (keeps trying while the broker is down)."""
    return create_contact_events_consumer(context.settings, context.db)


def consumer_enabled(settings: Settings) -> bool:
    return settings.kafka_consumer_enabled


# === SPEC ===
SPEC: ServiceSpec[Settings] = ServiceSpec(
    entry=load_service_entry(Path(__file__).resolve().parents[1]),
    routers=[orders.router, read_models.router],
    published_topics=published_topics,
    grpc_servicers=[
        GrpcServicer(
            GRPC_SERVICE_NAME, orders_pb2_grpc.add_OrdersServiceServicer_to_server, orders_servicer
        )
    ],
    consumers=[
        EventConsumer(
            "contact_events",
            contact_events_consumer,
            consumer_enabled,
            before_start=resync_without_history,
        )
    ],
    # In this order: the resync reads contacts through the client.
    resources=[
        LifespanHook("contacts_client", contacts_client),
        LifespanHook("contacts_resync", contacts_resync),
    ],
)
