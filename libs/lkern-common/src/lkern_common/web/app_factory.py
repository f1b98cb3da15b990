"""
================================================================
FILE: app_factory.py
PATH: /libs/lkern-common/src/lkern_common/web/app_factory.py
DESCRIPTION: Builds a service's FastAPI app the same way for every service
VERSION: v1.5.0
UPDATED: 2026-12-02 09:45:00
================================================================
"""

# === IMPORTS ===
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline

from lkern_common.auth import TokenVerifier
from lkern_common.idempotency import REPLAYED_HEADER, install_idempotency
from lkern_common.metrics.buffer import flush_all
from lkern_common.metrics.exposition import metrics_router
from lkern_common.runtime_config import LogLevelWatcher
from lkern_common.settings import ServiceSettings
from lkern_common.tracing import configure_tracing, instrument_fastapi
from lkern_common.web import log_level
from lkern_common.web.conditional import ETAG_HEADER, install_conditional_requests
from lkern_common.web.error_handlers import install_error_handlers
from lkern_common.web.health import (
    CheckResult,
    ReadinessCheck,
    add_readiness_check,
    health_router,
)
from lkern_common.web.middleware import EdgeMiddleware
from lkern_common.web.openapi import complete_openapi
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import AUTH_RESPONSES, check_routes

# === CONSTANTS ===
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# === TYPES ===
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


# === LIFESPAN ===
def _freezing_gc(lifespan: Lifespan) -> Lifespan:
    """
    The service's lifespan, then ``gc.freeze()`` once it has started: the objects made at
    start-up (modules, models, caches, the app itself: hundreds of thousands) live as long as
    the process, and a full garbage collection walked them all, a pause of tens of ms that
    showed as the p99 of every endpoint (docs/performance.md).
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            gc.collect()  # start-up garbage is not frozen with the rest
            gc.freeze()
            try:
                yield state
            finally:
                flush_all()  # the last second's tallied figures (lkern_common.metrics.buffer)

    return run


def _with_verifier(lifespan: Lifespan, verifier: TokenVerifier) -> Lifespan:
    """
    The service's lifespan with the token verifier's keys loaded first and its JWKS source
    closed last. A JWKS file that cannot be read stops the start (a configuration error); an
    unreachable JWKS URL does not (the issuer may come back): /ready reports it meanwhile.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        if not await verifier.ready() and verifier.keys.source.startswith("file"):
            raise RuntimeError(
                f"No token signing key in the JWKS {verifier.keys.source}: set AUTH_JWKS_FILE "
                "or AUTH_JWKS_URL (locally, `lkern up` or `lkern token` creates the "
                "development key)"
            )
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            await verifier.close()

    return run


def _with_log_level_watcher(lifespan: Lifespan, settings: ServiceSettings) -> Lifespan:
    """
    The service's lifespan, then the log level stored with PUT /config/log-level applied and
    watched in this worker (lkern_common.runtime_config), from the service's ``app.state.db``.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            db = getattr(app.state, "db", None)
            if db is None:  # an app without a database (tests): the level stays per process
                yield state
                return
            watcher = LogLevelWatcher(db, settings.log_level_poll_seconds)
            await watcher.start()
            try:
                yield state
            finally:
                await watcher.stop()

    return run


def _keys_check(verifier: TokenVerifier) -> ReadinessCheck:
    async def check() -> CheckResult:
        return CheckResult(ok=await verifier.ready(), details={"keys": verifier.keys.count})

    return check


# === ROUTES ===
def _check_route_classes(routers: Sequence[APIRouter]) -> None:
    """Every API route parses its body with the shared bounded JSON parser (routing.ApiRoute)."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and not isinstance(route, ApiRoute):
                raise TypeError(
                    f"route {route.path} is a {type(route).__name__}: declare its router as "
                    "APIRouter(..., route_class=lkern_common.web.routing.ApiRoute)"
                )


# === FACTORY ===
def create_web_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    api_prefix: str = "/api/v1",
) -> FastAPI:
    """
    The FastAPI app of a service (its lifespan is lkern_common.service.create_service_app's):
    /docs and /redoc served without a CDN (assets shipped by
    ``fastapi-offline``), CORS from configuration, a request id on every response and log line,
    one error contract (docs/errors.md), request bodies bounded by HTTP_MAX_BODY_BYTES (413,
    counted as they arrive, chunked or not), HEAD answered like GET, /health, /ready and /,
    GET/PUT /config/log-level (the log level at runtime, kept in the service's database),
    OpenTelemetry tracing when OTEL_* asks for it (lkern_common.tracing),
    /metrics (Prometheus, every worker's figures: docs/observability.md),
    and a bearer token with the declared scope on every other route (lkern_common.web.security:
    building an app with an undeclared route fails). The token verifier is
    ``app.state.token_verifier`` (gRPC uses the same one).
    """
    _check_route_classes(routers)
    # Before anything makes an engine or a channel: they are instrumented as they are made.
    configure_tracing(settings.service_name, settings.service_version)
    verifier = TokenVerifier.from_settings(settings)
    app = FastAPIOffline(
        title=title,
        version=settings.service_version,
        description=description,
        docs_url="/docs",
        redoc_url="/redoc",
        # FastAPI's own OpenTelemetry is off: our tracing instruments the app when OTEL_* asks
        # (one span per request, not two), metrics are Prometheus', and it would otherwise
        # look up three providers on every request (docs/performance.md).
        telemetry=NO_NATIVE_TELEMETRY,
        lifespan=_freezing_gc(
            _with_verifier(_with_log_level_watcher(lifespan, settings), verifier)
        ),
    )
    app.state.token_verifier = verifier
    add_readiness_check(app, "auth", _keys_check(verifier))
    cors = partial(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        # Every request header (If-Match, If-None-Match, Idempotency-Key, …): the middleware
        # echoes the ones a preflight asks for, never a literal "*" with credentials.
        allow_headers=["*"],
        # WWW-Authenticate: the web UI tells an expired token (invalid_token) from a missing scope.
        expose_headers=[
            "X-Request-ID",
            "X-Total-Count",
            "WWW-Authenticate",
            ETAG_HEADER,
            REPLAYED_HEADER,
        ],
    )
    # The only middleware: request id, access log, metrics, last-resort 500, HEAD, body limit,
    # and CORS for requests with an Origin (lkern_common.web.middleware; docs/observability.md).
    app.add_middleware(
        EdgeMiddleware,
        cors=cors,
        max_body_bytes=settings.http_max_body_bytes,
        log_requests=settings.log_requests,
        log_requests_sample=settings.log_requests_sample,
        log_slow_request_ms=settings.log_slow_request_ms,
    )
    install_error_handlers(app)
    install_conditional_requests(app, require_if_match=settings.require_if_match)
    install_idempotency(app, settings)
    docs_routes = list(app.router.routes)  # FastAPI's own: /openapi.json, /docs, /redoc, assets
    for router in routers:
        app.include_router(router, prefix=api_prefix, responses=AUTH_RESPONSES)
    app.include_router(health_router(settings))
    app.include_router(log_level.router)  # GET/PUT /config/log-level (lkern:admin)
    app.include_router(metrics_router())
    # The API's routes are tried first: a request is matched against the routes in order, and
    # each one passed costs a match, twice (FastAPI matches, then matches again to handle).
    app.router.routes[:] = [r for r in app.router.routes if r not in docs_routes] + docs_routes
    check_routes(app)
    complete_openapi(app, api_prefix)
    # A SERVER span per request around the whole stack while tracing is on (docs/observability.md).
    instrument_fastapi(app)
    return app
