"""
================================================================
FILE: middleware.py
PATH: /libs/lkern-common/src/lkern_common/web/middleware.py
DESCRIPTION: Request id and access-log middleware (plain ASGI, no per-request task overhead)
VERSION: v1.1.0
UPDATED: 2026-12-02 02:25:00
================================================================
"""

# === IMPORTS ===
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern_common.request_context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    request_id_var,
    subject_var,
)

# === LOGGING ===
logger = logging.getLogger("lkern.access")

# === CONSTANTS ===
_HEADER_BYTES = REQUEST_ID_HEADER.encode()


# === MIDDLEWARE ===
class RequestIdMiddleware:
    """
    Takes ``X-Request-ID`` from the request (or generates one), binds it to the context so
    every log line of the request carries it, returns it on the response, and logs one access
    line per request when ``log_requests`` is on.
    """

    def __init__(self, app: ASGIApp, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

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
        status_code = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (_HEADER_BYTES, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            if self.log_requests:
                logger.info(
                    "%s %s -> %s (%.1f ms)",
                    scope["method"],
                    scope["path"],
                    status_code,
                    (time.perf_counter() - started) * 1000,
                )
            subject_var.reset(subject_token)
            request_id_var.reset(token)
