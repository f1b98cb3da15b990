"""
================================================================
FILE: main.py
PATH: /services/lkms102-orders/app/main.py
DESCRIPTION: FastAPI application entry point for orders service
VERSION: v1.5.0
UPDATED: 2026-12-02 06:45:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.database import Database
from app.grpc.server import start_grpc_server
from app.kafka.consumer import create_contact_events_consumer
from app.routers import orders, read_models
from app.services.contacts_resync import ContactsResync, history_missing
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_common.contracts.orders import ORDER_TOPICS
from lkern_common.grpc_clients.contacts import AsyncContactsClient
from lkern_common.idempotency import IdempotencyKeyCleaner
from lkern_common.logging_setup import configure_logging
from lkern_common.metrics.exposition import add_metrics_refresher
from lkern_common.outbox import OutboxRelay
from lkern_common.web.app_factory import create_service_app
from lkern_common.web.health import add_readiness_check, database_check

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# How long start-up waits for the broker to say whether it holds the consumer group's offsets.
OFFSETS_CHECK_TIMEOUT_S = 10.0


# === APP FACTORY ===
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the orders app; the lifespan owns every resource and closes them in reverse."""
    settings = settings or get_settings()
    configure_logging(
        settings.log_level, log_format=settings.log_format, service=settings.service_name
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "Orders service starting (REST on %s, gRPC on %s, contacts at %s)",
            settings.http_port,
            settings.grpc_port,
            settings.contacts_grpc_target,
        )
        async with AsyncExitStack() as stack:
            db = Database(settings)
            stack.push_async_callback(db.dispose)
            app.state.db = db
            add_readiness_check(app, "database", database_check(db))

            # Deletes expired idempotency keys (lkern_common.idempotency).
            key_cleaner = IdempotencyKeyCleaner(settings, db)
            await key_cleaner.start()
            stack.push_async_callback(key_cleaner.stop)
            app.state.idempotency_key_cleaner = key_cleaner

            # Publishes order events from the outbox (tolerates an absent broker: events wait).
            relay = OutboxRelay(settings, db, topics=(*ORDER_TOPICS, settings.kafka_dlq_topic))
            await relay.start()
            stack.push_async_callback(relay.stop)
            app.state.outbox_relay = relay
            add_readiness_check(app, "outbox", relay.readiness_check())
            add_metrics_refresher(app, relay.refresh_metrics)  # backlog gauges at scrape time

            contacts_client = AsyncContactsClient(settings=settings.contacts_client_settings())
            stack.push_async_callback(contacts_client.close)
            app.state.contacts_client = contacts_client

            grpc_server = await start_grpc_server(settings, db, app.state.token_verifier)
            stack.push_async_callback(grpc_server.stop)
            app.state.grpc_server = grpc_server

            # Rebuilds the contacts read model from contacts (app.services.contacts_resync).
            resync = ContactsResync(db, contacts_client)
            stack.push_async_callback(resync.stop)
            app.state.contacts_resync = resync

            # Contact events into the read model (keeps trying while the broker is down).
            if settings.kafka_consumer_enabled:
                # Asked before the consumer commits anything: no committed offsets means the
                # broker lost (or never had) the events this read model was built from.
                if await history_missing(
                    settings,
                    settings.kafka_consumer_group_id,
                    CONTACT_TOPICS,
                    OFFSETS_CHECK_TIMEOUT_S,
                ):
                    resync.start("no committed offsets for its consumer group on this broker")
                consumer = create_contact_events_consumer(settings, db)
                await consumer.start()
                stack.push_async_callback(consumer.stop)
                app.state.contact_events_consumer = consumer
                add_readiness_check(app, "contact_events", consumer.readiness_check())

            try:
                yield
            finally:
                logger.info("Orders service shutting down")

    return create_service_app(
        settings,
        title="L-KERN Orders Service",
        description="Order management microservice (lkms102)",
        lifespan=lifespan,
        routers=[orders.router, read_models.router],
    )


# === APP INSTANCE ===
app = create_app()
