"""
================================================================
FILE: service.py
PATH: /libs/lkern-common/src/lkern_common/service.py
DESCRIPTION: A service's typed declaration (ServiceSpec) and create_service_app: its whole lifespan
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

A service declares itself once: its identity in the ``[tool.lkern]`` table of its pyproject.toml
(lkern_common.registry) and its moving parts in ``app/spec.py``::

    SPEC = ServiceSpec(
        entry=ENTRY,                                     # load_service_entry(<service folder>)
        routers=[contacts.router],
        published_topics=lambda settings: CONTACT_TOPICS,
        grpc_servicers=[GrpcServicer("contacts.ContactsService", add_…_to_server,
                                     lambda context: ContactsServicer(context.db))],
        consumers=[EventConsumer("contact_events", create_contact_events_consumer)],
        resources=[LifespanHook("contacts_client", contacts_client)],
    )
    app = create_service_app(SPEC, get_settings())       # app/main.py

:func:`create_service_app` owns the lifespan every service had written out by hand. In order,
each closed in reverse (also when a later one fails to start):

1. the database pool (``app.state.db``, readiness ``database``);
2. the idempotency key cleaner (``app.state.idempotency_key_cleaner``);
3. the spec's ``resources`` (``LifespanHook``: ``app.state.<name>``, optional readiness check):
   clients of other services, and the place for metrics exporters, tracing providers…;
4. the outbox relay of the spec's topics (``app.state.outbox_relay``, readiness ``outbox``,
   its backlog gauges refreshed at each /metrics scrape);
5. the gRPC server with every servicer (``app.state.grpc_server``);
6. the event consumers (``app.state.<name>_consumer``, readiness ``<name>``) when enabled, each
   after its ``before_start`` hook.

``app_hooks`` run while the app is built (middleware, extra routers: a metrics endpoint, a
log-level API) after the shared pieces (lkern_common.web.app_factory). Every route must require
only scopes the service declared (``[tool.lkern] scopes``): building the app checks it.
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import grpc.aio
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from lkern_common.auth import TokenVerifier
from lkern_common.database import Database
from lkern_common.grpc_server import GrpcServer, start_service_grpc_server
from lkern_common.idempotency import IdempotencyKeyCleaner
from lkern_common.logging_setup import configure_logging
from lkern_common.metrics.exposition import add_metrics_refresher
from lkern_common.outbox import OutboxRelay
from lkern_common.registry import ServiceEntry
from lkern_common.settings import ServiceSettings
from lkern_common.web.app_factory import create_web_app
from lkern_common.web.health import ReadinessCheck, add_readiness_check, database_check
from lkern_common.web.security import declared_scopes

if TYPE_CHECKING:
    # Only its type: importing it registers the inbox table on the shared metadata, which a
    # service that consumes nothing must not have (its migrations would not match).
    from lkern_common.kafka.consumer import IdempotentConsumer

# === LOGGING ===
logger = logging.getLogger(__name__)

# === TYPES ===
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


# === THE SPEC ===
@dataclass(frozen=True)
class ServiceContext(Generic[SettingsT]):
    """What a part of the lifespan gets to build itself from."""

    app: FastAPI
    settings: SettingsT
    db: Database
    token_verifier: TokenVerifier


@dataclass(frozen=True)
class GrpcServicer(Generic[SettingsT]):
    """A servicer of the service's gRPC server: its full proto name, adder and factory."""

    service_name: str  # "contacts.ContactsService"
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    create: Callable[[ServiceContext[SettingsT]], object]


@dataclass(frozen=True)
class EventConsumer(Generic[SettingsT]):
    """An idempotent consumer of other services' events (lkern_common.kafka.consumer)."""

    name: str  # readiness check name; app.state.<name>_consumer
    create: Callable[[ServiceContext[SettingsT]], "IdempotentConsumer"]
    enabled: Callable[[SettingsT], bool] = field(default=lambda settings: True)
    # Runs just before the consumer starts (it has committed nothing yet): e.g. a check of the
    # broker's committed offsets that starts a rebuild of a read model.
    before_start: Callable[[ServiceContext[SettingsT]], Awaitable[None]] | None = None


@dataclass(frozen=True)
class LifespanHook(Generic[SettingsT]):
    """
    A resource that lives as long as the app: ``enter(context)`` is an async context manager,
    entered after the database and before the relay, gRPC and consumers (which may use it);
    what it yields is ``app.state.<name>``. ``readiness`` makes a /ready check of it.
    """

    name: str
    enter: Callable[[ServiceContext[SettingsT]], AbstractAsyncContextManager[Any]]
    readiness: Callable[[Any], ReadinessCheck] | None = None


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT]):
    """Everything that makes one service: identity (registry) and its moving parts."""

    entry: ServiceEntry
    routers: Sequence[APIRouter]
    # The topics its outbox relay publishes (and creates), from its settings.
    published_topics: Callable[[SettingsT], Sequence[str]]
    grpc_servicers: Sequence[GrpcServicer[SettingsT]] = ()
    consumers: Sequence[EventConsumer[SettingsT]] = ()
    resources: Sequence[LifespanHook[SettingsT]] = ()
    app_hooks: Sequence[Callable[[FastAPI, SettingsT], None]] = ()

    @property
    def name(self) -> str:
        return self.entry.name


# === LIFESPAN PARTS ===
@asynccontextmanager
async def _key_cleaner(context: ServiceContext[Any]) -> AsyncIterator[IdempotencyKeyCleaner]:
    """Deletes expired idempotency keys (lkern_common.idempotency)."""
    cleaner = IdempotencyKeyCleaner(context.settings, context.db)
    await cleaner.start()
    try:
        yield cleaner
    finally:
        await cleaner.stop()


@asynccontextmanager
async def _outbox_relay(
    context: ServiceContext[Any], topics: Sequence[str]
) -> AsyncIterator[OutboxRelay]:
    """Publishes the service's events from its outbox (an absent broker only delays them)."""
    relay = OutboxRelay(context.settings, context.db, topics=tuple(topics))
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def start_grpc_server(
    spec: "ServiceSpec[SettingsT]", context: ServiceContext[SettingsT]
) -> GrpcServer:
    """
    The service's gRPC server with every servicer of its spec (lkern_common.grpc_server: mutual
    TLS, scopes per method, health, reflection), sharing the app's pool and token verifier.
    """
    return await start_service_grpc_server(
        context.settings,
        context.db,
        [
            (servicer.add_to_server, servicer.create(context), servicer.service_name)
            for servicer in spec.grpc_servicers
        ],
        token_verifier=context.token_verifier,
    )


def _lifespan(
    spec: ServiceSpec[SettingsT], settings: SettingsT
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "%s starting (REST on %s, gRPC on %s)",
            spec.name,
            settings.http_port,
            settings.grpc_port,
        )
        async with AsyncExitStack() as stack:
            db = Database(settings)
            stack.push_async_callback(db.dispose)
            app.state.db = db
            add_readiness_check(app, "database", database_check(db))
            context = ServiceContext(app, settings, db, app.state.token_verifier)

            app.state.idempotency_key_cleaner = await stack.enter_async_context(
                _key_cleaner(context)
            )
            for hook in spec.resources:
                resource = await stack.enter_async_context(hook.enter(context))
                setattr(app.state, hook.name, resource)
                if hook.readiness is not None:
                    add_readiness_check(app, hook.name, hook.readiness(resource))

            relay = await stack.enter_async_context(
                _outbox_relay(context, spec.published_topics(settings))
            )
            app.state.outbox_relay = relay
            add_readiness_check(app, "outbox", relay.readiness_check())
            add_metrics_refresher(app, relay.refresh_metrics)  # backlog gauges at scrape time

            if spec.grpc_servicers:
                grpc_server = await start_grpc_server(spec, context)
                stack.push_async_callback(grpc_server.stop)
                app.state.grpc_server = grpc_server

            for consumer_spec in spec.consumers:
                if not consumer_spec.enabled(settings):
                    continue
                if consumer_spec.before_start is not None:
                    await consumer_spec.before_start(context)
                consumer = consumer_spec.create(context)
                await consumer.start()
                stack.push_async_callback(consumer.stop)
                setattr(app.state, f"{consumer_spec.name}_consumer", consumer)
                add_readiness_check(app, consumer_spec.name, consumer.readiness_check())

            try:
                yield
            finally:
                logger.info("%s shutting down", spec.name)

    return lifespan


# === SCOPES ===
def check_declared_scopes(routers: Sequence[APIRouter], entry: ServiceEntry) -> None:
    """
    Refuse a route of the service's routers that needs a scope the service did not declare
    ([tool.lkern] scopes). The library's own routes (/config/log-level: lkern:admin) are not
    the service's and are not checked here.
    """
    undeclared = sorted(
        f"{','.join(sorted(route.methods or []))} {route.path} needs {scope}"
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for scope in declared_scopes(route) or ()
        if scope not in entry.scopes
    )
    if undeclared:
        raise RuntimeError(
            f"{entry.name}: routes need scopes not declared in [tool.lkern] scopes: "
            + ", ".join(undeclared)
        )


# === FACTORY ===
def create_service_app(spec: ServiceSpec[SettingsT], settings: SettingsT) -> FastAPI:
    """
    The service's FastAPI app (lkern_common.web.app_factory: middleware, errors, auth, health)
    with the whole lifespan of its spec (see the module docstring). ``python -m app`` serves it
    (lkern_common.web.serve) with the gRPC server in the same process.
    """
    configure_logging(
        settings.log_level, log_format=settings.log_format, service=settings.service_name
    )
    app = create_web_app(
        settings,
        title=spec.entry.title,
        description=spec.entry.description,
        lifespan=_lifespan(spec, settings),
        routers=spec.routers,
    )
    check_declared_scopes(spec.routers, spec.entry)
    for hook in spec.app_hooks:
        hook(app, settings)
    return app
