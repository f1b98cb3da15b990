"""
================================================================
FILE: grpc_auth.py
PATH: /libs/lkern-common/src/lkern_common/grpc_auth.py
DESCRIPTION: Who may call a gRPC method: declared scopes, caller identity, the interceptor
VERSION: v1.1.0
UPDATED: 2026-12-02 03:20:00
================================================================

Every RPC declares the scopes it needs next to its code::

    class ContactsServicer(contacts_pb2_grpc.ContactsServiceServicer):
        @requires_scope("contacts:read")
        async def GetContact(self, request, context): ...

`GrpcServer.add_servicer` collects the declarations from the service's descriptor and refuses a
servicer with a method that declares nothing, so a new RPC cannot be open by accident. Only the
standard health and reflection services are public (still over mutual TLS).

The caller of a call (its `Principal`):

1. a bearer token in the ``authorization`` metadata (``Bearer <JWT>``, for people and tools)
   is checked like on REST: the server's token hook (``TokenPrincipal``), in the services
   ``verifier_principal(app.state.token_verifier)``, the one `lkern_common.auth.TokenVerifier`
   REST uses; a bad token (or a server without a hook) → UNAUTHENTICATED;
2. otherwise the service named in the client certificate's SAN (the TLS handshake already
   proved it is signed by GRPC_TLS_CA); its scopes come from GRPC_CLIENT_SCOPES;
   no identity → UNAUTHENTICATED.

A principal without every scope the method needs → PERMISSION_DENIED ("scope X needed"). The
principal of the running call is in ``current_principal`` for the servicer, and its subject
in ``lkern_common.request_context.subject_var`` (log lines, who did it).
"""

# === IMPORTS ===
from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import grpc
import grpc.aio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from lkern_common.auth import InvalidTokenError, TokenVerifier
from lkern_common.request_context import subject_var

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
REQUIRED_SCOPES_ATTRIBUTE = "__lkern_required_scopes__"
AUTHORIZATION_METADATA = "authorization"
BEARER_PREFIX = "bearer "
# Callable without a scope (still over mutual TLS): liveness and the API description.
PUBLIC_SERVICES = frozenset(
    {health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])


# === PRINCIPAL ===
@dataclass(frozen=True)
class Principal:
    """Who makes a call: a service (client certificate) or a token's subject."""

    subject: str
    scopes: frozenset[str]
    kind: Literal["service", "token"]


current_principal: ContextVar[Principal | None] = ContextVar("grpc_principal", default=None)


# A bearer token → its principal; raises InvalidTokenError (lkern_common.auth's).
TokenPrincipal = Callable[[str], Awaitable[Principal]]


def verifier_principal(verifier: TokenVerifier) -> TokenPrincipal:
    """The token hook of a service: its REST token verifier (same keys, issuer, cache)."""

    async def principal(token: str) -> Principal:
        verified = await verifier.verify(token)
        return Principal(verified.subject, verified.scopes, "token")

    return principal


# === DECLARATIONS ===
def requires_scope(*scopes: str) -> Callable[[FunctionT], FunctionT]:
    """Declare the scopes an RPC needs (every one of them): decorate the servicer method."""
    if not scopes:
        raise ValueError("requires_scope() needs at least one scope")

    def declare(method: FunctionT) -> FunctionT:
        setattr(method, REQUIRED_SCOPES_ATTRIBUTE, frozenset(scopes))
        return method

    return declare


def method_requirements(servicer: object, service_name: str) -> dict[str, frozenset[str]]:
    """
    ``/package.Service/Method`` → the scopes it needs, for every method of ``service_name``
    (from the generated descriptor). Raises when a method declares nothing.
    """
    service = descriptor_pool.Default().FindServiceByName(service_name)
    requirements: dict[str, frozenset[str]] = {}
    missing: list[str] = []
    for method in service.methods:
        scopes = getattr(getattr(servicer, method.name, None), REQUIRED_SCOPES_ATTRIBUTE, None)
        if scopes is None:
            missing.append(method.name)
        else:
            requirements[f"/{service_name}/{method.name}"] = scopes
    if missing:
        raise RuntimeError(
            f"{service_name}: {', '.join(missing)} declare no required scope; decorate each "
            "with @requires_scope(...) (lkern_common.grpc_auth)"
        )
    return requirements


def is_public(method: str) -> bool:
    """True for a method of a public service (``/grpc.health.v1.Health/Check``…)."""
    return method.lstrip("/").split("/", 1)[0] in PUBLIC_SERVICES


# === IDENTITY ===
def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer …`` metadata entry ("" when malformed)."""
    for key, value in metadata or ():
        if key.lower() == AUTHORIZATION_METADATA:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if not text.lower().startswith(BEARER_PREFIX):
                return ""
            return text[len(BEARER_PREFIX) :].strip()
    return None


def service_principal(
    identities: Iterable[bytes] | None, client_scopes: Mapping[str, frozenset[str]]
) -> Principal | None:
    """
    The calling service from its certificate's SANs: the first SAN GRPC_CLIENT_SCOPES knows
    (a service's certificate also names localhost / 127.0.0.1), else the first SAN without
    scopes. None when the peer presented no identity.
    """
    names = [identity.decode("utf-8", "replace") for identity in identities or ()]
    if not names:
        return None
    known = next((name for name in names if name in client_scopes), None)
    if known is not None:
        return Principal(known, client_scopes[known], "service")
    return Principal(names[0], frozenset(), "service")


# === INTERCEPTOR ===
class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Checks every non-public call's principal against the method's declared scopes."""

    def __init__(
        self,
        requirements: Mapping[str, frozenset[str]],
        client_scopes: Mapping[str, Iterable[str]],
        token_principal: TokenPrincipal | None = None,
    ) -> None:
        self._requirements = requirements
        self._client_scopes = {name: frozenset(scopes) for name, scopes in client_scopes.items()}
        self._token_principal = token_principal

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_public(method):
            return handler
        # A registered method always has a requirement (add_servicer checks); fail closed.
        required = self._requirements.get(method, frozenset({"-undeclared-"}))
        metadata = handler_call_details.invocation_metadata
        token = bearer_token(metadata)

        async def authorise(context: grpc.aio.ServicerContext[Any, Any]) -> Principal:
            principal = await self._principal(context, token)
            missing = sorted(required - principal.scopes)
            if missing:
                logger.warning(
                    "gRPC %s refused: %s %s lacks scope %s",
                    method,
                    principal.kind,
                    principal.subject,
                    " ".join(missing),
                )
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED, f"Scope {' '.join(missing)} needed"
                )
            return principal

        return rewrap_handler(handler, lambda behavior: _guarded(behavior, authorise))

    async def _principal(
        self, context: grpc.aio.ServicerContext[Any, Any], token: str | None
    ) -> Principal:
        if token is not None:
            if self._token_principal is None or not token:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
            assert self._token_principal is not None
            try:
                return await self._token_principal(token)
            except InvalidTokenError as error:
                logger.info("gRPC bearer token refused: %s", error.reason)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
        principal = service_principal(context.peer_identities(), self._client_scopes)
        if principal is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "No client identity")
        assert principal is not None
        return principal


Authorise = Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[Principal]]


def _guarded(behavior: Any, authorise: Authorise) -> Any:
    """``behavior`` run only after ``authorise`` passed, with ``current_principal`` set."""
    if behavior is None:
        return None
    if inspect.isasyncgenfunction(behavior):

        async def stream_guard(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            _set_principal(await authorise(context))
            async for response in behavior(request, context):
                yield response

        return stream_guard

    async def guard(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        _set_principal(await authorise(context))
        return await behavior(request, context)

    return guard


def _set_principal(principal: Principal) -> None:
    """The call's principal for the servicer, its subject for logs (the call's own context)."""
    current_principal.set(principal)
    subject_var.set(principal.subject)


# === HANDLERS ===
def rewrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Callable[[Any], Any],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """
    The same method handler with its behaviour passed through ``wrap`` (and its request
    deserializer replaced when one is given).
    """
    kwargs: dict[str, Any] = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), **kwargs)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), **kwargs)
