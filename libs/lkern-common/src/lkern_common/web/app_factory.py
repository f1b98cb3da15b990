"""
================================================================
FILE: app_factory.py
PATH: /libs/lkern-common/src/lkern_common/web/app_factory.py
DESCRIPTION: Builds a service's FastAPI app the same way for every service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from lkern_common.settings import ServiceSettings
from lkern_common.web.error_handlers import install_error_handlers
from lkern_common.web.health import health_router
from lkern_common.web.middleware import RequestIdMiddleware

# === TYPES ===
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


# === FACTORY ===
def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    api_prefix: str = "/api/v1",
) -> FastAPI:
    """
    The FastAPI app of a service: /docs and /redoc served without a CDN (assets shipped by
    ``fastapi-offline``), CORS from configuration, a request id on every response and log line,
    one error contract, /health, /ready and /.
    """
    app = FastAPIOffline(
        title=title,
        version=settings.service_version,
        description=description,
        docs_url="/docs",
        redoc_url="/redoc",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=settings.cors_allow_credentials,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "X-Total-Count"],
    )
    # Added last so it is outermost: even CORS preflights and errors carry the request id.
    app.add_middleware(RequestIdMiddleware, log_requests=settings.log_requests)
    install_error_handlers(app)
    app.include_router(health_router(settings))
    for router in routers:
        app.include_router(router, prefix=api_prefix)
    return app
