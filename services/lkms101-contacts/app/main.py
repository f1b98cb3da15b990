"""
================================================================
FILE: main.py
PATH: /services/lkms101-contacts/app/main.py
DESCRIPTION: FastAPI application entry point for contacts service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.config import Settings, get_settings
from app.database import Database
from app.grpc.server import start_grpc_server
from app.kafka.events import CONTACT_TOPICS
from app.routers import contacts
from lkern_common.logging_setup import configure_logging
from lkern_common.outbox import OutboxRelay
from lkern_common.web.app_factory import create_service_app
from lkern_common.web.health import add_readiness_check, database_check

# === LOGGING ===
logger = logging.getLogger(__name__)


# === APP FACTORY ===
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the contacts app; the lifespan owns every resource and closes them in reverse."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("Contacts service starting (REST on %s)", settings.http_port)
        db = Database(settings)
        app.state.db = db
        add_readiness_check(app, "database", database_check(db))
        # Publishes contact events from the outbox (tolerates an absent broker: events wait).
        relay = OutboxRelay(settings, db, topics=CONTACT_TOPICS)
        app.state.outbox_relay = relay
        add_readiness_check(app, "outbox", relay.readiness_check())
        await relay.start()
        grpc_server = await start_grpc_server(settings, db)
        app.state.grpc_server = grpc_server
        try:
            yield
        finally:
            logger.info("Contacts service shutting down")
            await grpc_server.stop()
            await relay.stop()
            await db.dispose()

    return create_service_app(
        settings,
        title="L-KERN Contacts Service",
        description="Contact management microservice (lkms101)",
        lifespan=lifespan,
        routers=[contacts.router],
    )


# === APP INSTANCE ===
app = create_app()
