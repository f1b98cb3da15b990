"""
================================================================
FILE: middleware.py
PATH: /libs/lkern-common/src/lkern_common/web/middleware.py
DESCRIPTION: Request id, access log, last-resort 500, HEAD and body-size middleware (plain ASGI)
VERSION: v1.4.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""

# === IMPORTS ===
import logging
import random
import time

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern_common.database import is_database_unavailable
from lkern_common.metrics.http import HttpMetrics, copy_route
from lkern_common.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    request_id_var,
    subject_var,
)
from lkern_common.web.error_handlers import (
    database_unavailable_response,
    log_database_unavailable,
)

# === LOGGING ===
logger = logging.getLogger("lkern.access")
error_logger = logging.getLogger(__name__)

# === CONSTANTS ===
_HEADER_BYTES = REQUEST_ID_HEADER.encode()
_INTERNAL_ERROR_BODY = b'{"detail":"Internal server error"}'


# === MIDDLEWARE ===
class RequestIdMiddleware:
    """
    Takes ``X-Request-ID`` from the request (or generates one), binds it to the context so
    every log line of the request carries it, returns it on the response, and logs one access
    line per request when ``log_requests`` is on: every failed one (status ≥ 400), and of the
    successful ones the share ``log_requests_sample`` (LOG_REQUESTS_SAMPLE, default all).

    It also counts and times the request for the metrics (``HttpMetrics``: one call here
    instead of another middleware layer around every request).

    It is also the last resort for an exception nothing else handled: logged once, with its
    stack trace and the request id, and answered with a generic 500 that carries the request
    id. (Starlette's own 500 handler runs outside this middleware, after the request id is
    gone, and re-raises so that the server logs the trace a second time.)
    """

    def __init__(
        self, app: ASGIApp, log_requests: bool = True, log_requests_sample: float = 1.0
    ) -> None:
        self.app = app
        self.log_requests = log_requests
        self.sample = log_requests_sample
        self.metrics = HttpMetrics()

    def _logs(self, status_code: int) -> bool:
        if not self.log_requests or not logger.isEnabledFor(logging.INFO):
            return False
        return status_code >= 400 or self.sample >= 1.0 or random.random() < self.sample

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == _HEADER_BYTES),
            None,
        )
        request_id = accept_request_id(incoming)
        token = request_id_var.set(request_id)
        # Set by the route's token check (lkern_common.web.security); the access line shows it.
        subject_token = subject_var.set(None)
        started = time.perf_counter()
        status_code = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (_HEADER_BYTES, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as error:
            if is_database_unavailable(error):
                # Raised where no exception handler runs (a middleware, a dependency's exit
                # after the route): still the standard's 503, one line, no stack trace.
                log_database_unavailable(scope["method"], scope["path"], error)
                if not status_code:
                    await database_unavailable_response()(scope, receive, send_with_request_id)
                status_code = status_code or 503
            else:
                error_logger.exception("Unhandled error in %s %s", scope["method"], scope["path"])
                if not status_code:  # else the response is cut short: nothing more can be sent
                    await _send_internal_error(send_with_request_id)
                status_code = status_code or 500
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record(scope, status_code, elapsed)
            if self._logs(status_code):
                logger.info(
                    "%s %s -> %s (%.1f ms)",
                    scope["method"],
                    scope["path"],
                    status_code,
                    elapsed * 1000,
                )
            subject_var.reset(subject_token)
            request_id_var.reset(token)


async def _send_internal_error(send: Send) -> None:
    """A generic JSON 500: never a stack trace or an exception's text to the client."""
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_INTERNAL_ERROR_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _INTERNAL_ERROR_BODY})


class HeadAsGetMiddleware:
    """
    ``HEAD`` is answered like ``GET`` without a body (RFC 9110): FastAPI's routes take only the
    methods they declare, so a HEAD was a 405. The request goes to the app as a GET; the
    response keeps its status and headers (Content-Length included) and loses its body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        as_get = {**scope, "method": "GET"}
        await self.app(as_get, receive, send_without_body)
        copy_route(as_get, scope)  # the metrics count it under its route template


class RequestBodyTooLargeError(HTTPException):
    """The request body is larger than HTTP_MAX_BODY_BYTES (413, rendered like every error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """
    Refuses a request body larger than ``max_body_bytes`` with 413 before it is held in
    memory: at once when its Content-Length says so (the body is never read), else while it
    arrives (chunked transfer), counting the bytes of each message the app receives; the
    first message past the limit raises RequestBodyTooLargeError, which the app's error
    handling renders as a 413. (FastAPI's own ``max_body_size`` answers a declared size with a
    plain-text 413 sent around the app's middleware, without the request id.)
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            error = RequestBodyTooLargeError(self.max_body_bytes)
            await JSONResponse({"detail": error.detail}, 413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise RequestBodyTooLargeError(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)
