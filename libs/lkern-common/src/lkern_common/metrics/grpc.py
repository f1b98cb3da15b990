"""
================================================================
FILE: grpc.py
PATH: /libs/lkern-common/src/lkern_common/metrics/grpc.py
DESCRIPTION: gRPC interceptors that count and time RPCs, server side and client side
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

- ``ServerMetricsInterceptor``: the outermost interceptor of ``GrpcServer`` (lkern_common.
  grpc_server), so an RPC refused by authorisation or by the request check is counted with its
  code too. Only RPCs with one response are counted (every RPC of our services; the health
  ``Watch`` and reflection streams are left alone: they last as long as a client wants).
  Methods are the full names the server registered (``/contacts.ContactsService/GetContact``):
  an unknown method never reaches the interceptor's wrapper, so a client cannot create series.
- ``ClientMetricsInterceptor``: on the channels of our gRPC clients
  (lkern_common.grpc_clients); the code is the call's final status, ``UNAVAILABLE`` and
  ``DEADLINE_EXCEEDED`` included.
"""

# === IMPORTS ===
from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from lkern_common.grpc_auth import rewrap_handler
from lkern_common.metrics import (
    GRPC_CLIENT_HANDLED_TALLY,
    GRPC_CLIENT_SECONDS_TALLY,
    GRPC_SERVER_HANDLED_TALLY,
    GRPC_SERVER_SECONDS_TALLY,
)

# === TYPES ===
Continuation = Callable[
    [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]
]


# === SERVER ===
def _server_code(context: grpc.aio.ServicerContext[Any, Any], failed: bool) -> str:
    """The status an RPC ended with: what abort()/set_code() set, else OK (UNKNOWN if it raised)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


def _timed(behavior: Any, method: str) -> Any:
    """A coroutine behaviour that records its code and duration; others are left as they are."""
    if not inspect.iscoroutinefunction(behavior):
        return behavior
    labels = (method,)

    async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        failed = True
        try:
            response = await behavior(request, context)
            failed = False
            return response
        finally:
            GRPC_SERVER_SECONDS_TALLY.observe(labels, time.perf_counter() - started)
            GRPC_SERVER_HANDLED_TALLY.inc((method, _server_code(context, failed)))

    return timed


class ServerMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts (by method and code) and times every unary-response RPC the server answers."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.response_streaming:
            return handler
        method = handler_call_details.method
        return rewrap_handler(handler, lambda behavior: _timed(behavior, method))


# === CLIENT ===
class ClientMetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts (by method and final code) and times every unary RPC made on the channel."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        started = time.perf_counter()
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        call = await continuation(client_call_details, request)
        code = await call.code()  # waits for the end of the RPC without raising its error
        GRPC_CLIENT_SECONDS_TALLY.observe((name,), time.perf_counter() - started)
        GRPC_CLIENT_HANDLED_TALLY.inc((name, code.name))
        return call
