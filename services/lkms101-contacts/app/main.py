"""
================================================================
FILE: main.py
PATH: /services/lkms101-contacts/app/main.py
DESCRIPTION: FastAPI application entry point for contacts service
VERSION: v1.3.0
UPDATED: 2026-12-02 06:10:00
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
from app.routers import contacts
from lkern_common.contracts.contacts import CONTACT_TOPICS
from lkern_common.idempotency import IdempotencyKeyCleaner
from lkern_common.logging_setup import configure_logging
from lkern_common.metrics.exposition import add_metrics_refresher
from lkern_common.outbox import OutboxRelay
from lkern_common.web.app_factory import create_service_app
from lkern_common.web.health import add_readiness_check, database_check

# === LOGGING ===
logger = logging.getLogger(__name__)


# === APP FACTORY ===
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the contacts app; the lifespan owns every resource and closes them in reverse."""
    settings = settings or get_settings()
    configure_logging(
        settings.log_level, log_format=settings.log_format, service=settings.service_name
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "Contacts service starting (REST on %s, gRPC on %s)",
            settings.http_port,
            settings.grpc_port,
        )
        # Every resource is registered as it starts and closed in reverse order, also when a
        # later one fails to start.
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

            # Publishes contact events from the outbox (tolerates an absent broker: events wait).
            relay = OutboxRelay(settings, db, topics=CONTACT_TOPICS)
            await relay.start()
            stack.push_async_callback(relay.stop)
            app.state.outbox_relay = relay
            add_readiness_check(app, "outbox", relay.readiness_check())
            add_metrics_refresher(app, relay.refresh_metrics)  # backlog gauges at scrape time

            grpc_server = await start_grpc_server(settings, db, app.state.token_verifier)
            stack.push_async_callback(grpc_server.stop)
            app.state.grpc_server = grpc_server

            try:
                yield
            finally:
                logger.info("Contacts service shutting down")

    return create_service_app(
        settings,
        title="L-KERN Contacts Service",
        description="Contact management microservice (lkms101)",
        lifespan=lifespan,
        routers=[contacts.router],
    )


# === APP INSTANCE ===
app = create_app()
