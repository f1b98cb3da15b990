"""
================================================================
FILE: error_handlers.py
PATH: /libs/lkern-common/src/lkern_common/web/error_handlers.py
DESCRIPTION: One error contract for REST: domain errors and unexpected errors as JSON
VERSION: v1.1.0
UPDATED: 2026-12-02 02:45:00
================================================================
"""

# === IMPORTS ===
import logging
import math
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from lkern_common.errors import DomainError

# === LOGGING ===
logger = logging.getLogger(__name__)


# === CONSTANTS ===
# A 422 quotes at most this many characters of the offending value (then "…"): an error body
# never echoes a large input back (the body limit allows 1 MiB).
MAX_INPUT_EXCERPT = 100


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
        allowed.add("HEAD")  # HeadAsGetMiddleware answers it
    headers = {"Allow": ", ".join(sorted(allowed))} if allowed else exc.headers
    return JSONResponse(status_code=405, content={"detail": "Method Not Allowed"}, headers=headers)


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
    app.add_exception_handler(405, method_not_allowed_handler)
    for error_type in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_unavailable_handler)
    # An unexpected exception is the last resort of RequestIdMiddleware (logged once, with the
    # request id, answered 500 with X-Request-ID), not an exception handler here.
