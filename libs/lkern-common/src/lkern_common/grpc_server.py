"""
================================================================
FILE: grpc_server.py
PATH: /libs/lkern-common/src/lkern_common/grpc_server.py
DESCRIPTION: grpc.aio server: mutual TLS, authorisation, health, reflection, request id, one
             error contract (DomainError → status), checked request messages, metrics,
             graceful stop
VERSION: v1.4.0
UPDATED: 2026-12-02 06:40:00
================================================================

Usage (a service's lifespan):

    server = GrpcServer(tls=service_tls_files(settings), host=settings.grpc_host,
                        port=settings.grpc_port, client_scopes=settings.grpc_client_scopes)
    server.add_servicer(contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
                        ContactsServicer(), "contacts.ContactsService")
    port = await server.start()                 # port 0 → the port actually bound
    server.health_watch(database_answers, interval=5.0)   # SERVING / NOT_SERVING
    ...
    await server.stop()                         # in-flight RPCs finish, new ones are refused

The server listens only with mutual TLS (a client certificate signed by GRPC_TLS_CA is
required) and authorises every call against the scopes its method declares
(`lkern_common.grpc_auth`); health and reflection are public. There is no insecure mode.

The standard's sample uses the thread-pool `grpc.server`; our services are asyncio end to end
(async SQLAlchemy), so the server is `grpc.aio` and servicer methods are `async def`.
"""

# === IMPORTS ===
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from lkern_common.auth import TokenVerifier
from lkern_common.database import Database, error_summary, is_database_unavailable
from lkern_common.errors import DomainError
from lkern_common.grpc_auth import (
    AuthorizationInterceptor,
    TokenPrincipal,
    method_requirements,
    rewrap_handler,
    verifier_principal,
)
from lkern_common.grpc_tls import TlsFiles, service_tls_files
from lkern_common.grpc_wire import BadRequest, checked_deserializer
from lkern_common.metrics.grpc import ServerMetricsInterceptor
from lkern_common.request_context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from lkern_common.settings import ServiceSettings
from lkern_common.tracing import grpc_server_interceptors

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DEFAULT_GRACE_SECONDS = 5.0
DEFAULT_HEALTH_INTERVAL_SECONDS = 5.0
INTERNAL_ERROR_DETAILS = "Internal server error"
WATCH_STOP_TIMEOUT_S = 5.0  # how long stop() waits for cancelled health watches
DATABASE_UNAVAILABLE_DETAILS = "Service temporarily unavailable: the database cannot be reached"
# SO_REUSEPORT (grpc's default on Linux) would let a second process bind the same port silently
# and steal half of the connections; a port clash must fail loudly instead. Only the workers of
# one service share their port on purpose (GrpcServer(reuse_port=True), HTTP_WORKERS > 1).
REUSE_PORT_OPTION = "grpc.so_reuseport"

# grpcio-reflection serves only v1alpha; grpcurl and Postman ask v1 first (same messages).
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

ServicerT = TypeVar("ServicerT")
AddServicerFn = Callable[[ServicerT, grpc.aio.Server], None]
HealthCheck = Callable[[], Awaitable[bool]]


# === INTERCEPTOR ===
def _request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id (when well-formed), else a fresh id."""
    for key, value in metadata or ():
        if key.lower() == REQUEST_ID_HEADER:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            return accept_request_id(text)
    return accept_request_id(None)


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """
    Runs every RPC with `request_id_var` set from the `x-request-id` metadata (a new id when
    absent or malformed), and is gRPC's one error contract, as REST's handlers are:

    - a request message that does not decode, or a 32-bit integer sent as a wider value, is
      INVALID_ARGUMENT before the servicer runs (lkern_common.grpc_wire);
    - a `DomainError` the servicer raises ends the RPC with its `grpc_code` and message;
    - an error that means "the database is not available right now"
      (`lkern_common.database.is_database_unavailable`, the same test as REST's 503) is
      UNAVAILABLE, logged in one line without a stack trace: the client may retry;
    - any other exception is logged and answered INTERNAL "Internal server error" (instead of
      grpc's UNKNOWN that echoes the exception text). `context.abort(...)` passes through.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        request_id = _request_id_from(handler_call_details.invocation_metadata)
        deserializer = handler.request_deserializer
        if deserializer is not None and not handler.request_streaming:
            deserializer = checked_deserializer(deserializer)
        return rewrap_handler(
            handler,
            lambda behavior: _wrap(behavior, method, request_id),
            request_deserializer=deserializer,
        )


class RefuseBadRequestInterceptor(grpc.aio.ServerInterceptor):
    """
    Ends an RPC whose request message did not decode (a ``BadRequest`` from the checked
    deserializer) with INVALID_ARGUMENT. It runs after the AuthorizationInterceptor, so an
    unauthorised caller learns nothing about its message, and before the servicer.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return rewrap_handler(handler, lambda behavior: _refusing(behavior, method))


async def _internal_error(
    context: grpc.aio.ServicerContext[Any, Any], method: str, error: Exception
) -> NoReturn:
    """
    End the RPC for an exception the servicer did not handle: UNAVAILABLE when the database is
    away (one WARNING line), else INTERNAL (logged with its stack trace).
    """
    if is_database_unavailable(error):
        logger.warning(
            "gRPC %s: database unavailable, answered UNAVAILABLE (%s)", method, error_summary(error)
        )
        await context.abort(grpc.StatusCode.UNAVAILABLE, DATABASE_UNAVAILABLE_DETAILS)
    logger.exception("Unhandled error in gRPC method %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_DETAILS)


async def _domain_error(
    context: grpc.aio.ServicerContext[Any, Any], method: str, error: DomainError
) -> NoReturn:
    """End the RPC with the error's gRPC code and message (logged like REST's handler does)."""
    if error.grpc_code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
        logger.error("gRPC %s failed: %s", method, error.message)
    else:
        logger.info("gRPC %s rejected (%s): %s", method, error.grpc_code.name, error.message)
    await context.abort(error.grpc_code, error.message)


async def _refuse(
    context: grpc.aio.ServicerContext[Any, Any], method: str, bad: BadRequest
) -> NoReturn:
    """A request message refused before the servicer: INVALID_ARGUMENT, a safe reason."""
    logger.info("gRPC %s rejected (INVALID_ARGUMENT): %s", method, bad.reason)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bad.reason)


def _refusing(behavior: Any, method: str) -> Any:
    """``behavior`` run only when its request message decoded (see RefuseBadRequestInterceptor)."""
    if behavior is None:
        return None
    if inspect.isasyncgenfunction(behavior):

        async def stream_refusing(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if isinstance(request, BadRequest):
                await _refuse(context, method, request)
            async for response in behavior(request, context):
                yield response

        return stream_refusing

    async def refusing(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, BadRequest):
            await _refuse(context, method, request)
        return await behavior(request, context)

    return refusing


def _wrap(behavior: Any, method: str, request_id: str) -> Any:
    """Wrap an aio behaviour (coroutine or async generator function) with the request context."""
    if behavior is None:
        return None
    if inspect.isasyncgenfunction(behavior):

        async def stream_wrapper(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            token = request_id_var.set(request_id)
            try:
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except DomainError as error:
                await _domain_error(context, method, error)
            except Exception as error:
                await _internal_error(context, method, error)
            finally:
                with contextlib.suppress(ValueError):  # finalised in another context
                    request_id_var.reset(token)

        return stream_wrapper
    if inspect.iscoroutinefunction(behavior):

        async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = request_id_var.set(request_id)
            try:
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except DomainError as error:
                await _domain_error(context, method, error)
            except Exception as error:
                await _internal_error(context, method, error)
            finally:
                request_id_var.reset(token)

        return wrapper
    # A plain (sync) behaviour runs in grpc's thread pool; leave it untouched.
    return behavior


# === HEALTH ===
class HealthServicer(health.aio.HealthServicer):
    """
    The standard health service with ``List`` (grpcio-health-checking advertises it in its
    service definition but leaves it UNIMPLEMENTED, logging an ERROR on every call).
    """

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {health.OVERALL_HEALTH: _SERVING}

    async def set(self, service: str, status: Any) -> None:
        self._statuses[service] = status
        await super().set(service, status)

    async def enter_graceful_shutdown(self) -> None:
        for service in self._statuses:
            self._statuses[service] = _NOT_SERVING
        await super().enter_graceful_shutdown()

    async def List(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """Every service's status (the overall one under ""). (The typing stubs lack List.)"""
        list_response: Any = getattr(health_pb2, "HealthListResponse")  # noqa: B009
        return list_response(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._statuses.items()
            }
        )


# === REFLECTION ===
def _register_reflection_v1_file() -> None:
    """
    Put grpc.reflection.v1's file in the default descriptor pool (a renamed copy of v1alpha's:
    the two protocols differ only in their package), so that reflection can describe it.
    """
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = _REFLECTION_V1_FILE
    proto.package = "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:  # set only on message-typed fields
                field.type_name = field.type_name.replace(".v1alpha.", ".v1.")
    for service in proto.service:
        for rpc in service.method:
            rpc.input_type = rpc.input_type.replace(".v1alpha.", ".v1.")
            rpc.output_type = rpc.output_type.replace(".v1alpha.", ".v1.")
    pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Server reflection as ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``."""
    _register_reflection_v1_file()
    names = (*service_names, reflection.SERVICE_NAME, REFLECTION_V1_SERVICE)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)
    handler = grpc.method_handlers_generic_handler(
        REFLECTION_V1_SERVICE,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


# === HEALTH WATCH ===
async def run_health_watch(
    set_serving: Callable[[bool], Awaitable[None]],
    check: HealthCheck,
    interval: float = DEFAULT_HEALTH_INTERVAL_SECONDS,
    *,
    check_timeout: float | None = None,
) -> None:
    """
    Forever: run `check()` (bounded by `check_timeout`, default `interval`), then `set_serving()`
    when the result changed; a check that raises or times out counts as not serving. Cancel the
    task to stop it.
    """
    limit = interval if check_timeout is None else check_timeout
    last: bool | None = None
    while True:
        try:
            ok = bool(await asyncio.wait_for(check(), limit))
            reason = ""
        except Exception as exc:
            ok = False
            reason = f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
        if ok != last:
            if ok:
                logger.info("gRPC health: SERVING")
            else:
                logger.warning("gRPC health: NOT_SERVING, readiness check failed%s", reason)
            await set_serving(ok)
            last = ok
        await asyncio.sleep(interval)


# === SERVER ===
class GrpcServer:
    """
    A `grpc.aio` server on mutual TLS (``tls``) with the standard health service, server
    reflection, the request context interceptor and the authorisation interceptor (each
    method's declared scopes; ``client_scopes`` maps client certificate identities to scopes,
    ``token_principal`` checks bearer tokens). Register servicers with `add_servicer` before
    `start()`.

    ``reuse_port`` lets several processes of one service listen on the same port (each HTTP
    worker runs its own gRPC server; the kernel spreads new connections among them). Off by
    default, so that a port another program holds is an error at start.
    """

    def __init__(
        self,
        *,
        tls: TlsFiles,
        client_scopes: Mapping[str, Iterable[str]] | None = None,
        token_principal: TokenPrincipal | None = None,
        host: str = "0.0.0.0",
        port: int = 0,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        options: Sequence[tuple[str, Any]] = (),
        maximum_concurrent_rpcs: int | None = None,
        enable_reflection: bool = True,
        reuse_port: bool = False,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._grace_seconds = grace_seconds
        self._tls = tls
        self._requirements: dict[str, frozenset[str]] = {}
        self._interceptors = (
            # Outermost: the SERVER span (trace context from the caller's metadata) covers the
            # authorisation too; empty while tracing is off (lkern_common.tracing).
            *grpc_server_interceptors(),
            # Then the metrics: an RPC refused by the interceptors below is counted too.
            ServerMetricsInterceptor(),
            RequestContextInterceptor(),
            AuthorizationInterceptor(self._requirements, client_scopes or {}, token_principal),
            RefuseBadRequestInterceptor(),
            *interceptors,
        )
        self._options = ((REUSE_PORT_OPTION, 1 if reuse_port else 0), *options)
        self._maximum_concurrent_rpcs = maximum_concurrent_rpcs
        self._enable_reflection = enable_reflection
        self._registrations: list[Callable[[grpc.aio.Server], None]] = []
        self._service_names: list[str] = []
        self._health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None
        self._watch_tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- registration ---
    def add_servicer(
        self,
        add_to_server: AddServicerFn[ServicerT],
        servicer: ServicerT,
        service_name: str,
    ) -> None:
        """
        Register a servicer through its generated `add_XServicer_to_server`; `service_name` is
        the full proto name (e.g. "contacts.ContactsService") used for health, reflection and
        to find its methods: each must declare its scopes (`@requires_scope`), else this raises.
        """
        if self._server is not None:
            raise RuntimeError("add_servicer() must be called before start()")
        self._requirements.update(method_requirements(servicer, service_name))
        self._registrations.append(lambda server: add_to_server(servicer, server))
        self._service_names.append(service_name)

    # --- properties ---
    @property
    def port(self) -> int:
        """The bound port (after `start()`)."""
        if self._port is None:
            raise RuntimeError("the gRPC server is not started")
        return self._port

    @property
    def address(self) -> str:
        """`host:port` as bound (after `start()`)."""
        return f"{self._host}:{self.port}"

    @property
    def requirements(self) -> dict[str, frozenset[str]]:
        """``/package.Service/Method`` → the scopes it needs (registered services)."""
        return dict(self._requirements)

    @property
    def service_names(self) -> tuple[str, ...]:
        """Full names of the registered application services."""
        return tuple(self._service_names)

    @property
    def server(self) -> grpc.aio.Server:
        """The underlying `grpc.aio.Server` (after `start()`)."""
        if self._server is None:
            raise RuntimeError("the gRPC server is not started")
        return self._server

    # --- lifecycle ---
    async def start(self, *, serving: bool = True) -> int:
        """Build, bind and start the server; return the bound port (useful with port 0)."""
        if self._server is not None:
            raise RuntimeError("the gRPC server is already started")
        server = grpc.aio.server(
            interceptors=self._interceptors,
            options=self._options,
            maximum_concurrent_rpcs=self._maximum_concurrent_rpcs,
        )
        for register in self._registrations:
            register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self._enable_reflection:
            enable_reflection((*self._service_names, health.SERVICE_NAME), server)
        address = f"{self._host}:{self._requested_port}"
        credentials = self._tls.server_credentials()
        try:
            port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpc raises when the address cannot be bound
            raise RuntimeError(f"cannot bind the gRPC server to {address}: {exc}") from exc
        if port == 0:  # older grpc versions report a failed bind as port 0
            raise RuntimeError(f"cannot bind the gRPC server to {address}")
        await server.start()
        self._server = server
        self._port = port
        await self.set_serving(serving)
        logger.info(
            "gRPC server listening on %s:%d with mutual TLS (services: %s)",
            self._host,
            port,
            ", ".join(self._service_names) or "-",
        )
        return port

    async def set_serving(self, serving: bool) -> None:
        """Set the health status (overall "" and every registered service)."""
        status = _SERVING if serving else _NOT_SERVING
        for name in (health.OVERALL_HEALTH, *self._service_names):
            await self._health.set(name, status)

    def health_watch(
        self,
        check: HealthCheck,
        interval: float = DEFAULT_HEALTH_INTERVAL_SECONDS,
        *,
        check_timeout: float | None = None,
    ) -> asyncio.Task[None]:
        """
        Start a task that sets SERVING / NOT_SERVING from `check()` every `interval` seconds
        (e.g. "the database answers"); it is cancelled by `stop()`.
        """
        task = asyncio.create_task(
            run_health_watch(self.set_serving, check, interval, check_timeout=check_timeout),
            name="grpc-health-watch",
        )
        self._watch_tasks.add(task)
        task.add_done_callback(self._watch_tasks.discard)
        return task

    async def stop(self, grace: float | None = None) -> None:
        """
        Graceful stop: health turns NOT_SERVING for good, new RPCs are refused and in-flight
        RPCs get `grace` seconds (default `grace_seconds`) to finish before being cancelled.
        """
        if self._stopped:
            return
        self._stopped = True
        for task in list(self._watch_tasks):
            task.cancel()
        if self._watch_tasks:
            # wait, not gather: gather re-raised a watch's cancellation in this stop now and then,
            # which left the app's lifespan unfinished (its shutdown hung until timed out).
            _, pending = await asyncio.wait(list(self._watch_tasks), timeout=WATCH_STOP_TIMEOUT_S)
            if pending:
                logger.warning("gRPC stop: %d health watches did not end in time", len(pending))
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self._grace_seconds if grace is None else grace)
            logger.info("gRPC server on %s:%s stopped", self._host, self._port)

    async def wait_for_termination(self) -> None:
        """Block until the server terminates (wrap in `asyncio.timeout()` to bound it)."""
        await self.server.wait_for_termination()

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


# === SERVICE SERVER ===
def message_size_options(max_bytes: int) -> list[tuple[str, Any]]:
    """Channel / server options bounding received and sent messages (GRPC_MAX_MESSAGE_BYTES)."""
    return [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    ]


async def start_service_grpc_server(
    settings: ServiceSettings,
    db: Database,
    servicers: Sequence[tuple[AddServicerFn[Any], Any, str]],
    *,
    token_verifier: TokenVerifier,
) -> GrpcServer:
    """
    Start a service's gRPC server the way every L-KERN service runs it: on GRPC_HOST:GRPC_PORT
    with mutual TLS (GRPC_TLS_*), each method's scopes checked (GRPC_CLIENT_SCOPES; bearer
    tokens by ``token_verifier``, the app's REST verifier), health (SERVING only while the
    database answers, re-checked every few seconds), reflection, request ids and graceful
    stop. ``servicers`` are ``(add_XServicer_to_server, servicer, "package.Service")``.
    The caller's lifespan stops it (lkern_common.service.create_service_app). With
    HTTP_WORKERS > 1 every worker runs one and they share the port (``lkern_common.web.serve``
    checks that the port is free first).
    """
    server = GrpcServer(
        tls=service_tls_files(settings),
        client_scopes=settings.grpc_client_scopes,
        token_principal=verifier_principal(token_verifier),
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.grpc_grace_seconds,
        reuse_port=settings.worker_processes > 1,
        options=message_size_options(settings.grpc_max_message_bytes),
    )
    for add_to_server, servicer, service_name in servicers:
        server.add_servicer(add_to_server, servicer, service_name)
    await server.start(serving=await db.ping())
    server.health_watch(db.ping, DEFAULT_HEALTH_INTERVAL_SECONDS)
    return server
