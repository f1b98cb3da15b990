"""
================================================================
FILE: error_handlers.py
PATH: /libs/lkern-common/src/lkern_common/web/error_handlers.py
DESCRIPTION: One error contract for REST: domain errors and unexpected errors as JSON
VERSION: v1.3.0
UPDATED: 2026-12-02 09:50:00
================================================================
"""

# === IMPORTS ===
import logging
import math
import re
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from lkern_common.database import error_summary, is_database_unavailable
from lkern_common.errors import DomainError, ServiceUnavailableError

# === LOGGING ===
logger = logging.getLogger(__name__)


# === CONSTANTS ===
# A 422 quotes at most this many characters of the offending value (then "…"): an error body
# never echoes a large input back (the body limit allows 1 MiB).
MAX_INPUT_EXCERPT = 100
# Seconds a client is asked to wait (Retry-After) when the database is not available: a restart
# or a failover takes a few seconds, and a client retrying every second finds it back soon.
DATABASE_RETRY_AFTER_SECONDS = 1
DATABASE_UNAVAILABLE_DETAIL = "Service temporarily unavailable: the database cannot be reached"


# === HANDLERS ===
async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a DomainError as ``{"detail": message}`` with its status (same shape as FastAPI's)."""
    assert isinstance(exc, DomainError)
    headers: dict[str, str] | None = None
    if isinstance(exc, ServiceUnavailableError):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
        logger.warning("%s %s unavailable: %s", request.method, request.url.path, exc.message)
    elif exc.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    else:
        logger.info(
            "%s %s rejected (%s): %s",
            request.method,
            request.url.path,
            exc.status_code,
            exc.message,
        )
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.message}, headers=headers
    )


def _excerpt(value: Any) -> Any:
    """
    The offending value as a 422 may quote it: numbers, booleans and null as they are; text cut
    to MAX_INPUT_EXCERPT characters; lists and objects (a whole body, for a missing field) as a
    cut excerpt of their JSON text; NaN / ±Infinity (JSON cannot carry them) as their text.
    Text that is not valid UTF-8 (a lone surrogate) is escaped.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(jsonable_encoder(value)).decode()
        except (TypeError, ValueError, RecursionError):
            text = f"<{type(value).__name__}>"
        if len(text) <= MAX_INPUT_EXCERPT:
            return orjson.loads(text)
    if len(text) > MAX_INPUT_EXCERPT:
        text = text[:MAX_INPUT_EXCERPT] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """
    FastAPI's 422 body (``{"detail": [errors]}``, each with ``loc``, ``msg``, ``type``), the
    offending ``input`` of each cut to a short excerpt (``_excerpt``) and the rest made
    JSON-safe (``ctx`` may hold NaN or an exception).
    """
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        shown = {key: item for key, item in error.items() if key not in ("input", "ctx")}
        if "input" in error:
            shown["input"] = _excerpt(error["input"])
        if "ctx" in error:
            shown["ctx"] = {key: _excerpt(item) for key, item in error["ctx"].items()}
        errors.append(jsonable_encoder(shown))
    return JSONResponse(status_code=422, content={"detail": errors})


def _documented_methods(app: Any) -> list[tuple[re.Pattern[str], set[str]]]:
    """Each documented path as a regex with its methods, from the app's OpenAPI document."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        app.state, "allowed_methods", None
    )
    if table is None:
        table = [
            (compile_path(path)[0], {method.upper() for method in operations})
            for path, operations in app.openapi().get("paths", {}).items()
        ]
        app.state.allowed_methods = table
    return table


async def method_not_allowed_handler(request: Request, exc: Exception) -> JSONResponse:
    """
    405 whose ``Allow`` lists every method of the path: Starlette's names only the first route
    that matched the path (``GET`` for a resource that also takes ``PUT`` and ``DELETE``).
    Read from the OpenAPI document, which lists every operation of every API path.
    """
    assert isinstance(exc, HTTPException)
    allowed: set[str] = set()
    for pattern, methods in _documented_methods(request.app):
        if pattern.match(request.url.path):
            allowed |= methods
    if "GET" in allowed:
        allowed.add("HEAD")  # EdgeMiddleware answers it like GET
    headers = {"Allow": ", ".join(sorted(allowed))} if allowed else exc.headers
    return JSONResponse(status_code=405, content={"detail": "Method Not Allowed"}, headers=headers)


def database_unavailable_response() -> JSONResponse:
    """The standard's 503 for "the database is not available right now": retry shortly."""
    return JSONResponse(
        status_code=503,
        content={"detail": DATABASE_UNAVAILABLE_DETAIL},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def log_database_unavailable(method: str, path: str, error: BaseException) -> None:
    """One WARNING line (the request id comes from the log format), no stack trace."""
    logger.warning(
        "%s %s: database unavailable, answered 503 (%s)", method, path, error_summary(error)
    )


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """
    An error of the database layer: 503 with ``Retry-After`` when it means the database is not
    available right now (``lkern_common.database.is_database_unavailable``); anything else is a
    bug, re-raised to EdgeMiddleware (500, logged once with its stack trace).
    """
    if not is_database_unavailable(exc):
        raise exc
    log_database_unavailable(request.method, request.url.path, exc)
    return database_unavailable_response()


# The exception types whose instances may mean "the database is away"; each is classified by
# is_database_unavailable. (SQLAlchemy often wraps a server that is shutting down as a plain
# DBAPIError; hot reads on the driver raise asyncpg's own errors; sockets raise OSError.)
DATABASE_ERROR_TYPES: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the shared handlers on an app."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(405, method_not_allowed_handler)
    for error_type in DATABASE_ERROR_TYPES:
        app.add_exception_handler(error_type, database_error_handler)
    # An unexpected exception is the last resort of EdgeMiddleware (logged once, with the
    # request id, answered 500 with X-Request-ID), not an exception handler here.
