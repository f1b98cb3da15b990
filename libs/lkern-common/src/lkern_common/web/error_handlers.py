"""
================================================================
FILE: error_handlers.py
PATH: /libs/lkern-common/src/lkern_common/web/error_handlers.py
DESCRIPTION: One error contract for REST: domain errors and unexpected errors as JSON
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from lkern_common.errors import DomainError

# === LOGGING ===
logger = logging.getLogger(__name__)


# === HANDLERS ===
async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a DomainError as ``{"detail": message}`` with its status (same shape as FastAPI's)."""
    assert isinstance(exc, DomainError)
    if exc.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    else:
        logger.info(
            "%s %s rejected (%s): %s",
            request.method,
            request.url.path,
            exc.status_code,
            exc.message,
        )
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN / ±Infinity float replaced by its text (JSON cannot carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """
    FastAPI's 422 body (``{"detail": [errors]}``), made JSON-safe: a body that sent ``NaN`` or
    ``Infinity`` gets the 422 it deserves instead of a 500 from echoing the value back.
    """
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse(status_code=422, content={"detail": errors})


async def unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Log the details (with stack trace) and answer a generic 500: never a trace to the client."""
    logger.exception("Unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "Internal server error"})


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached (restart, network, pool exhausted): 503, retry later."""
    logger.error("Database unavailable in %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        status_code=503,
        content={"detail": "Service temporarily unavailable: the database cannot be reached"},
        headers={"Retry-After": "1"},
    )


# Errors that mean "the database is not there right now", as opposed to a bug.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the shared handlers on an app."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for error_type in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_unavailable_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
