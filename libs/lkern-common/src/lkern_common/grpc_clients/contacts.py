"""
================================================================
FILE: contacts.py
PATH: /libs/lkern-common/src/lkern_common/grpc_clients/contacts.py
DESCRIPTION: gRPC clients of the contacts service (lkms101): sync per the standard, and asyncio
VERSION: v1.4.0
UPDATED: 2026-12-02 06:45:00
================================================================

Configuration (environment, or a `ContactsClientSettings` passed in):
    CONTACTS_GRPC_TARGET           host:port of lkms101-contacts (default localhost:5101;
                                   containers set lkms101-contacts:5101)
    CONTACTS_GRPC_TIMEOUT_SECONDS  deadline of every call, retries included (default 2.0)
    CONTACTS_GRPC_MAX_ATTEMPTS     attempts on UNAVAILABLE, 1 = no retry (default 3, max 5)
    CONTACTS_GRPC_INITIAL_BACKOFF_SECONDS / _MAX_BACKOFF_SECONDS / _BACKOFF_MULTIPLIER
    CONTACTS_GRPC_BREAKER_FAILURE_THRESHOLD
                                   consecutive "unreachable" calls that open the circuit
                                   breaker of the async client (default 5)
    CONTACTS_GRPC_BREAKER_OPEN_SECONDS
                                   how long it stays open before a half-open probe (default 5)
    GRPC_TLS_CA / GRPC_TLS_CERT / GRPC_TLS_KEY
                                   mutual TLS: the CA that signed the contacts server's
                                   certificate, and the caller's own certificate and key
                                   (SAN = the calling service's name, its identity there)

The channel is always mutual TLS (lkern_common.grpc_tls); the target's host must be a name in
the server certificate (the service name, localhost or 127.0.0.1 for the local stack's).

Retries are done by gRPC itself from the channel's service config (`retryPolicy`), only for
UNAVAILABLE: every RPC is a read, so a retry is safe. The current request id
(`lkern_common.request_context`) travels as `x-request-id` metadata.

`ContactsClient` (sync) keeps the standard's behaviour: any gRPC error is logged and reads as
"no contact" / "not valid". `AsyncContactsClient` is the one services use: NOT_FOUND → None,
but "contacts unreachable" raises `ContactsUnreachableError` so a caller can answer 503 instead
of a wrong 400. Create (or first use) an `AsyncContactsClient` inside the event loop it serves.

Circuit breaker (the async client; purgatory's `AsyncCircuitBreakerFactory`): after
CONTACTS_GRPC_BREAKER_FAILURE_THRESHOLD calls in a row that found contacts unreachable (each
waited up to the deadline), the circuit opens and every call fails at once with
`ContactsCircuitOpenError` (a `ContactsUnreachableError` that says when to retry) for
CONTACTS_GRPC_BREAKER_OPEN_SECONDS. Then it is half-open: one call at a time is let through as
a probe (the others still fail at once); a probe that succeeds closes the circuit, one that
finds contacts unreachable opens it again. Answers such as NOT_FOUND, and calls the caller
cancelled, are not failures.
"""

# === IMPORTS ===
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import grpc
import grpc.aio
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import CLOSED, OPENED, OpenedState
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_common.grpc_tls import TlsFiles, tls_files
from lkern_common.request_context import REQUEST_ID_HEADER, get_request_id
from lkern_common.settings import LOCAL_PKI_DIR
from lkern_common.tracing import grpc_client_interceptors

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DEFAULT_CONTACTS_TARGET = "localhost:5101"
CONTACTS_SERVICE_NAME = contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"].full_name
# Codes that mean "the contacts service could not answer" (after gRPC's own retries).
UNAVAILABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


# === SETTINGS ===
class ContactsClientSettings(BaseSettings):
    """Where and how to call the contacts service (env prefix `CONTACTS_GRPC_`)."""

    model_config = SettingsConfigDict(
        env_prefix="CONTACTS_GRPC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    target: str = DEFAULT_CONTACTS_TARGET
    timeout_seconds: float = Field(default=2.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=5)  # gRPC caps retry attempts at 5
    initial_backoff_seconds: float = Field(default=0.1, gt=0)
    max_backoff_seconds: float = Field(default=1.0, gt=0)
    backoff_multiplier: float = Field(default=2.0, gt=0)
    breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        description="Calls in a row that find contacts unreachable before the circuit opens",
    )
    breaker_open_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long the open circuit fails calls at once before a half-open probe",
    )
    # The caller's own TLS material: the same variables as the service's gRPC server.
    tls_ca: Path = Field(
        default=LOCAL_PKI_DIR / "ca.crt",
        validation_alias="GRPC_TLS_CA",
        description="PEM file of the CA the contacts server's certificate must be signed by",
    )
    tls_cert: Path | None = Field(
        default=None,
        validation_alias="GRPC_TLS_CERT",
        description="PEM client certificate the client presents (SAN = the caller's name)",
    )
    tls_key: Path | None = Field(
        default=None, validation_alias="GRPC_TLS_KEY", description="PEM key of GRPC_TLS_CERT"
    )

    def tls_files(self) -> TlsFiles:
        """The client's TLS files (a clear error when the certificate is not set)."""
        return tls_files(self.tls_ca, self.tls_cert, self.tls_key)


def _duration(seconds: float) -> str:
    """A protobuf JSON duration ("0.100000000s")."""
    return f"{seconds:.9f}s"


def service_config(settings: ContactsClientSettings) -> dict[str, Any]:
    """gRPC service config for the contacts service: retry UNAVAILABLE with backoff."""
    method_config: dict[str, Any] = {"name": [{"service": CONTACTS_SERVICE_NAME}]}
    if settings.max_attempts > 1:  # a retryPolicy needs maxAttempts >= 2
        method_config["retryPolicy"] = {
            "maxAttempts": settings.max_attempts,
            "initialBackoff": _duration(settings.initial_backoff_seconds),
            "maxBackoff": _duration(settings.max_backoff_seconds),
            "backoffMultiplier": settings.backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"methodConfig": [method_config]}


def channel_options(settings: ContactsClientSettings) -> list[tuple[str, Any]]:
    """
    Channel options: retries on, the service config above, and a short reconnect backoff so
    that a restarted contacts service is used again within a second or two (gRPC's default
    backoff grows to two minutes; callers meanwhile get a clear "unavailable").
    """
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config(settings))),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def _call_metadata() -> tuple[tuple[str, str], ...]:
    """Per-call metadata: the current request id, when there is one."""
    request_id = get_request_id()
    return ((REQUEST_ID_HEADER, request_id),) if request_id else ()


# === ERRORS ===
class ContactsClientError(Exception):
    """A call to the contacts service failed (other than "not found")."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"contacts {method} failed: {code.name} {details}".rstrip())
        self.method = method
        self.code = code
        self.details = details


class ContactsUnreachableError(ContactsClientError):
    """The contacts service is unreachable or did not answer in time (after retries)."""

    retry_after_seconds = 1


class ContactsCircuitOpenError(ContactsUnreachableError):
    """
    Not called: contacts was found unreachable call after call (the circuit breaker is open).
    ``retry_after_seconds``: when the breaker lets a probe through again.
    """

    def __init__(self, method: str, retry_after_seconds: int) -> None:
        super().__init__(
            method,
            grpc.StatusCode.UNAVAILABLE,
            f"circuit open: contacts was unreachable, next probe in {retry_after_seconds} s",
        )
        self.retry_after_seconds = retry_after_seconds


def _client_error(method: str, error: grpc.RpcError) -> ContactsClientError:
    """Map a gRPC error to the typed exception (and log it once)."""
    code = error.code()
    details = error.details() or ""
    if code in UNAVAILABLE_CODES:
        logger.warning("contacts %s unavailable: %s %s", method, code.name, details)
        return ContactsUnreachableError(method, code, details)
    logger.error("contacts %s failed: %s %s", method, code.name, details)
    return ContactsClientError(method, code, details)


# === CIRCUIT BREAKER ===
CIRCUIT_NAME = "lkms101-contacts"
ResultT = TypeVar("ResultT")


def _not_a_failure(error: BaseException) -> bool:
    """An answer of contacts (NOT_FOUND, INVALID_ARGUMENT…): contacts is there."""
    return not isinstance(error, ContactsUnreachableError)


class ContactsCircuitBreaker:
    """
    The async client's circuit breaker (purgatory's, in memory: one per client, so one per
    process) with half-open probes limited to one at a time (see the module docstring).
    """

    def __init__(self, failure_threshold: int, open_seconds: float) -> None:
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failure_threshold,
            default_ttl=open_seconds,
            exclude=[(ContactsClientError, _not_a_failure), asyncio.CancelledError],
        )
        self._factory.add_listener(self._log_state_change)
        self._probe_running = False
        self.state = CLOSED  # "closed" | "opened" | "half-opened", for logs and readiness

    async def call(self, method: str, rpc: Callable[[], Awaitable[ResultT]]) -> ResultT:
        """``rpc()`` through the breaker; ContactsCircuitOpenError at once while it is open."""
        breaker = await self._factory.get_breaker(CIRCUIT_NAME)
        context = breaker.context
        probe = context.state != CLOSED  # open (maybe due for a probe) or half-open
        if probe and self._probe_running:
            # Another caller's probe decides in a moment: try again in a second.
            raise ContactsCircuitOpenError(method, 1)
        if probe:
            self._probe_running = True
        try:
            async with breaker:
                return await rpc()
        except OpenedState:
            raise ContactsCircuitOpenError(
                method, self._seconds_to_probe(context.opened_at)
            ) from None
        finally:
            if probe:
                self._probe_running = False

    def _seconds_to_probe(self, opened_at: float | None) -> int:
        """Whole seconds until the open circuit lets a probe through (at least 1)."""
        if opened_at is None:
            return 1
        return max(1, math.ceil(opened_at + float(self._factory.default_ttl) - time.time()))

    def _log_state_change(self, name: str, event_type: str, event: Any) -> None:
        if event_type != "state_changed":
            return
        self.state = event.state
        if event.state == OPENED:
            logger.warning(
                "Circuit breaker %s opened: contacts unreachable %d times in a row; calls fail "
                "at once for %.0f s, then one probe",
                name,
                self._factory.default_threshold,
                self._factory.default_ttl,
            )
        else:
            logger.info("Circuit breaker %s is %s", name, event.state)


# === RESULTS ===
class ContactValidation(NamedTuple):
    """Result of ValidateContact: unpacks as `(is_valid, error_message)`."""

    is_valid: bool
    error_message: str


# === SYNC CLIENT ===
class ContactsClient:
    """gRPC client for contacts service (synchronous; the standard's client)."""

    def __init__(
        self, host: str | None = None, *, settings: ContactsClientSettings | None = None
    ) -> None:
        """Initialize client with channel and stub (`host` defaults to CONTACTS_GRPC_TARGET)."""
        self.settings = settings or ContactsClientSettings()
        self.host = host or self.settings.target
        self.channel = grpc.secure_channel(
            self.host,
            self.settings.tls_files().channel_credentials(),
            options=channel_options(self.settings),
        )
        self.stub = contacts_pb2_grpc.ContactsServiceStub(self.channel)

    def get_contact(self, contact_id: int) -> contacts_pb2.Contact | None:
        """
        Get contact by ID.

        Returns:
            Contact message, or None if not found or on any gRPC error (logged)
        """
        request = contacts_pb2.GetContactRequest(id=contact_id)
        try:
            response = self.stub.GetContact(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                logger.info("Contact %s not found via gRPC", contact_id)
            else:
                logger.error("gRPC error: %s - %s", e.code(), e.details())
            return None
        if not response.HasField("contact"):
            return None
        logger.info("Retrieved contact via gRPC: %s", contact_id)
        return response.contact

    def validate_contact(self, contact_id: int) -> bool:
        """
        Validate that contact exists and is active.

        Returns:
            True if valid, False otherwise (also on any gRPC error, logged)
        """
        request = contacts_pb2.ValidateContactRequest(id=contact_id)
        try:
            response = self.stub.ValidateContact(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.RpcError as e:
            logger.error("gRPC error: %s - %s", e.code(), e.details())
            return False
        if not response.is_valid:
            logger.warning("Contact validation failed: %s", response.error_message)
        return response.is_valid

    def close(self) -> None:
        """Close gRPC channel."""
        self.channel.close()

    def __enter__(self) -> ContactsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# === ASYNC CLIENT ===
class AsyncContactsClient:
    """
    asyncio gRPC client for contacts service. NOT_FOUND reads as None / "not valid"; an
    unreachable or too slow service raises `ContactsUnreachableError` (its subclass
    `ContactsCircuitOpenError` at once while the circuit breaker is open), any other gRPC
    failure `ContactsClientError`. The channel opens on first use; `close()` (or
    `async with`) ends it.
    """

    def __init__(
        self, host: str | None = None, *, settings: ContactsClientSettings | None = None
    ) -> None:
        self.settings = settings or ContactsClientSettings()
        self.host = host or self.settings.target
        self._channel: grpc.aio.Channel | None = None
        self._stub: contacts_pb2_grpc.ContactsServiceAsyncStub | None = None
        self.breaker = ContactsCircuitBreaker(
            self.settings.breaker_failure_threshold, self.settings.breaker_open_seconds
        )

    def _get_stub(self) -> contacts_pb2_grpc.ContactsServiceAsyncStub:
        """The stub, opening the channel on first use (inside the running event loop)."""
        if self._stub is None:
            # Imported here: the settings import this module, and prometheus-client must not be
            # imported before serve() chose its multiprocess folder (lkern_common.web.serve).
            from lkern_common.metrics.grpc import ClientMetricsInterceptor

            self._channel = grpc.aio.secure_channel(
                self.host,
                self.settings.tls_files().channel_credentials(),
                options=channel_options(self.settings),
                # A CLIENT span per call and traceparent in the metadata while tracing is on;
                # lkern_grpc_client_* metrics.
                interceptors=[*grpc_client_interceptors(), ClientMetricsInterceptor()],
            )
            self._stub = contacts_pb2_grpc.ContactsServiceStub(self._channel)
        return self._stub

    async def get_contact(self, contact_id: int) -> contacts_pb2.Contact | None:
        """Get contact by ID; None if it does not exist."""
        return await self.breaker.call("GetContact", lambda: self._get_contact(contact_id))

    async def _get_contact(self, contact_id: int) -> contacts_pb2.Contact | None:
        request = contacts_pb2.GetContactRequest(id=contact_id)
        try:
            response = await self._get_stub().GetContact(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _client_error("GetContact", e) from e
        return response.contact if response.HasField("contact") else None

    async def get_contacts_by_ids(self, ids: Iterable[int]) -> list[contacts_pb2.Contact]:
        """Get the contacts with these IDs (batch); unknown IDs are simply absent."""
        unique_ids = list(dict.fromkeys(ids))
        if not unique_ids:
            return []
        return await self.breaker.call(
            "GetContactsByIds", lambda: self._get_contacts_by_ids(unique_ids)
        )

    async def _get_contacts_by_ids(self, unique_ids: list[int]) -> list[contacts_pb2.Contact]:
        request = contacts_pb2.GetContactsByIdsRequest(ids=unique_ids)
        try:
            response = await self._get_stub().GetContactsByIds(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            raise _client_error("GetContactsByIds", e) from e
        return list(response.contacts)

    async def list_contacts(
        self, after_id: int = 0, page_size: int = 0
    ) -> tuple[list[contacts_pb2.Contact], int]:
        """
        A page of every contact with an id greater than ``after_id``, ordered by id, and the
        ``after_id`` of the next page (0 after the last page). ``page_size`` 0 = the server's.
        Through the breaker like every call: a resync does not hammer a contacts that is down.
        """
        return await self.breaker.call(
            "ListContacts", lambda: self._list_contacts(after_id, page_size)
        )

    async def _list_contacts(
        self, after_id: int, page_size: int
    ) -> tuple[list[contacts_pb2.Contact], int]:
        request = contacts_pb2.ListContactsRequest(after_id=after_id, page_size=page_size)
        try:
            response = await self._get_stub().ListContacts(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            raise _client_error("ListContacts", e) from e
        return list(response.contacts), response.next_after_id

    async def validate_contact_detailed(self, contact_id: int) -> ContactValidation:
        """Validate that the contact exists and is active; the reason when it is not."""
        return await self.breaker.call(
            "ValidateContact", lambda: self._validate_contact(contact_id)
        )

    async def _validate_contact(self, contact_id: int) -> ContactValidation:
        request = contacts_pb2.ValidateContactRequest(id=contact_id)
        try:
            response = await self._get_stub().ValidateContact(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                message = e.details() or f"Contact with id {contact_id} not found"
                return ContactValidation(False, message)
            raise _client_error("ValidateContact", e) from e
        if not response.is_valid:
            logger.info("Contact %s is not valid: %s", contact_id, response.error_message)
        return ContactValidation(response.is_valid, response.error_message)

    async def validate_contact(self, contact_id: int) -> bool:
        """Validate that the contact exists and is active."""
        return (await self.validate_contact_detailed(contact_id)).is_valid

    async def close(self, grace: float | None = None) -> None:
        """Close the channel (in-flight calls get `grace` seconds)."""
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close(grace)

    async def __aenter__(self) -> AsyncContactsClient:
        self._get_stub()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
