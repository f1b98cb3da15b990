"""
================================================================
FILE: middleware.py
PATH: /libs/lkern-common/src/lkern_common/web/middleware.py
DESCRIPTION: The one middleware: request id, access log, metrics, 500, HEAD, body limit, CORS
VERSION: v2.0.0
UPDATED: 2026-12-02 09:45:00
================================================================

One plain ASGI middleware does what every request needs before and after the app: each
layer of middleware is another coroutine, closure and scope copy per request, and four of them
cost as much as FastAPI's routing on a key lookup (docs/performance.md). CORS stays Starlette's
well-kept ``CORSMiddleware``, entered only by requests that carry an ``Origin`` header (a
request without one is never a cross-origin request, and Starlette would only pass it on).
"""

# === IMPORTS ===
import logging
import random
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern_common.database import is_database_unavailable
from lkern_common.metrics.http import HttpMetrics
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
# Methods whose body no route reads: their receive is not wrapped by the body limit.
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# === MIDDLEWARE ===
class RequestBodyTooLargeError(HTTPException):
    """The request body is larger than HTTP_MAX_BODY_BYTES (413, rendered like every error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than {limit} bytes")


class EdgeMiddleware:
    """
    The outermost layer of a service's app, for every HTTP request:

    - **Request id**: ``X-Request-ID`` from the request (or a new one) is bound to the context,
      so every log line of the request carries it, and returned on the response.
    - **Access log**: one line per request when ``log_requests`` is on: every failed one
      (status ≥ 400) and every slow one (``log_slow_request_ms``), and of the others the
      share ``log_requests_sample`` (the metrics count every request).
    - **Metrics**: the request counted and timed (``HttpMetrics``) under its route template.
    - **Last resort**: an exception nothing else handled is logged once, with its stack trace
      and the request id, and answered with a generic 500 (a database that is away: the
      standard's 503, one line, no trace). Starlette's own 500 handler runs outside, after the
      request id is gone, and re-raises so that the server logs the trace a second time.
    - **HEAD** is answered like GET without a body (RFC 9110): FastAPI's routes take only the
      methods they declare, so a HEAD was a 405. Status and headers (Content-Length) are kept.
    - **Body limit**: a body larger than ``max_body_bytes`` is refused with 413 before it is
      held in memory: at once when Content-Length says so, else while it arrives (chunked),
      counting the bytes the app receives; the first message past the limit raises
      RequestBodyTooLargeError, which the app's error handling renders as a 413. (FastAPI's
      ``max_body_size`` answers with a plain-text 413 outside the app, without the request id.)
    - **CORS**: requests with an ``Origin`` header go through ``cors`` (Starlette's middleware
      wrapped around the app, and around the 413 above); the others skip it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cors: Callable[[ASGIApp], ASGIApp],
        max_body_bytes: int,
        log_requests: bool = True,
        log_requests_sample: float = 1.0,
        log_slow_request_ms: float = 500.0,
    ) -> None:
        self.app = app
        self.cors_app = cors(app)
        self.max_body_bytes = max_body_bytes
        self.too_large = self._too_large
        self.cors_too_large = cors(self._too_large)
        self.log_requests = log_requests
        self.sample = log_requests_sample
        self.slow_s = log_slow_request_ms / 1000
        self.metrics = HttpMetrics()

    def _logs(self, status_code: int, seconds: float) -> bool:
        if not self.log_requests or not logger.isEnabledFor(logging.INFO):
            return False
        if status_code >= 400 or seconds >= self.slow_s or self.sample >= 1.0:
            return True
        return random.random() < self.sample

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, declared_length, has_origin = _edge_headers(scope["headers"])
        request_id = accept_request_id(incoming)
        token = request_id_var.set(request_id)
        # Set by the route's token check (lkern_common.web.security); the access line shows it.
        subject_token = subject_var.set(None)
        started = time.perf_counter()
        method = scope["method"]
        status_code = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (_HEADER_BYTES, request_id.encode()),
                ]
            elif method == "HEAD" and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        inner = self.cors_app if has_origin else self.app
        app_scope = {**scope, "method": "GET"} if method == "HEAD" else scope
        try:
            if declared_length is not None and declared_length > self.max_body_bytes:
                too_large = self.cors_too_large if has_origin else self.too_large
                await too_large(scope, receive, send_with_request_id)
            elif method in _BODYLESS_METHODS:
                await inner(app_scope, receive, send_with_request_id)
            else:
                await inner(app_scope, self._limited(receive), send_with_request_id)
        except Exception as error:
            status_code = await self._last_resort(
                error, scope, receive, send_with_request_id, status_code
            )
        finally:
            if app_scope is not scope and "route" in app_scope:
                scope["route"] = app_scope["route"]  # a HEAD counts under its route template
            elapsed = time.perf_counter() - started
            self.metrics.record(scope, status_code, elapsed)
            if self._logs(status_code, elapsed):
                logger.info(
                    "%s %s -> %s (%.1f ms)",
                    method,
                    scope["path"],
                    status_code,
                    elapsed * 1000,
                )
            subject_var.reset(subject_token)
            request_id_var.reset(token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413 for a body whose declared length is over the limit (the body is never read)."""
        error = RequestBodyTooLargeError(self.max_body_bytes)
        await JSONResponse({"detail": error.detail}, 413)(scope, receive, send)

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that raises RequestBodyTooLargeError once the body passes the limit."""
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLargeError(limit)
            return message

        return limited_receive

    @staticmethod
    async def _last_resort(
        error: Exception, scope: Scope, receive: Receive, send: Send, status_code: int
    ) -> int:
        """Answer an exception no handler took (unless the response began); its status."""
        if is_database_unavailable(error):
            # Raised where no exception handler runs (a middleware, a dependency's exit
            # after the route): still the standard's 503, one line, no stack trace.
            log_database_unavailable(scope["method"], scope["path"], error)
            if not status_code:
                await database_unavailable_response()(scope, receive, send)
            return status_code or 503
        error_logger.exception("Unhandled error in %s %s", scope["method"], scope["path"])
        if not status_code:  # else the response is cut short: nothing more can be sent
            await _send_internal_error(send)
        return status_code or 500


def _edge_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None, bool]:
    """The request id sent, the declared Content-Length (if a number), whether Origin is set."""
    request_id: str | None = None
    length: int | None = None
    has_origin = False
    for key, value in headers:
        if key == _HEADER_BYTES:
            request_id = value.decode("latin-1")
        elif key == b"content-length":
            length = int(value) if value.isdigit() else None
        elif key == b"origin":
            has_origin = True
    return request_id, length, has_origin


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
