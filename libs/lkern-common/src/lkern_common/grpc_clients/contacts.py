"""
================================================================
FILE: contacts.py
PATH: /libs/lkern-common/src/lkern_common/grpc_clients/contacts.py
DESCRIPTION: gRPC clients of the contacts service (lkms101): sync per the standard, and asyncio
VERSION: v1.2.0
UPDATED: 2026-12-02 06:05:00
================================================================

Configuration (environment, or a `ContactsClientSettings` passed in):
    CONTACTS_GRPC_TARGET           host:port of lkms101-contacts (default localhost:5101;
                                   containers set lkms101-contacts:5101)
    CONTACTS_GRPC_TIMEOUT_SECONDS  deadline of every call, retries included (default 2.0)
    CONTACTS_GRPC_MAX_ATTEMPTS     attempts on UNAVAILABLE, 1 = no retry (default 3, max 5)
    CONTACTS_GRPC_INITIAL_BACKOFF_SECONDS / _MAX_BACKOFF_SECONDS / _BACKOFF_MULTIPLIER
    GRPC_TLS_CA / GRPC_TLS_CERT / GRPC_TLS_KEY
                                   mutual TLS: the CA that signed the contacts server's
                                   certificate, and the caller's own certificate and key
                                   (SAN = the calling service's name, its identity there)

The channel is always mutual TLS (lkern_common.grpc_tls); the target's host must be a name in
the server certificate (the service name, localhost or 127.0.0.1 for the local stack's).

Retries are done by gRPC itself from the channel's service config (`retryPolicy`), only for
UNAVAILABLE: all three RPCs are reads, so a retry is safe. The current request id
(`lkern_common.request_context`) travels as `x-request-id` metadata.

`ContactsClient` (sync) keeps the standard's behaviour: any gRPC error is logged and reads as
"no contact" / "not valid". `AsyncContactsClient` is the one services use: NOT_FOUND → None,
but "contacts unreachable" raises `ContactsUnavailableError` so a caller can answer 503 instead
of a wrong 400. Create (or first use) an `AsyncContactsClient` inside the event loop it serves.
"""

# === IMPORTS ===
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import grpc
import grpc.aio
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_common.grpc_tls import TlsFiles, tls_files
from lkern_common.request_context import REQUEST_ID_HEADER, get_request_id
from lkern_common.settings import LOCAL_PKI_DIR

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


class ContactsUnavailableError(ContactsClientError):
    """The contacts service is unreachable or did not answer in time (after retries)."""


def _client_error(method: str, error: grpc.RpcError) -> ContactsClientError:
    """Map a gRPC error to the typed exception (and log it once)."""
    code = error.code()
    details = error.details() or ""
    if code in UNAVAILABLE_CODES:
        logger.warning("contacts %s unavailable: %s %s", method, code.name, details)
        return ContactsUnavailableError(method, code, details)
    logger.error("contacts %s failed: %s %s", method, code.name, details)
    return ContactsClientError(method, code, details)


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
    unreachable or too slow service raises `ContactsUnavailableError`, any other gRPC failure
    `ContactsClientError`. The channel opens on first use; `close()` (or `async with`) ends it.
    """

    def __init__(
        self, host: str | None = None, *, settings: ContactsClientSettings | None = None
    ) -> None:
        self.settings = settings or ContactsClientSettings()
        self.host = host or self.settings.target
        self._channel: grpc.aio.Channel | None = None
        self._stub: contacts_pb2_grpc.ContactsServiceAsyncStub | None = None

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
                interceptors=[ClientMetricsInterceptor()],  # lkern_grpc_client_* metrics
            )
            self._stub = contacts_pb2_grpc.ContactsServiceStub(self._channel)
        return self._stub

    async def get_contact(self, contact_id: int) -> contacts_pb2.Contact | None:
        """Get contact by ID; None if it does not exist."""
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
        request = contacts_pb2.GetContactsByIdsRequest(ids=unique_ids)
        try:
            response = await self._get_stub().GetContactsByIds(
                request, timeout=self.settings.timeout_seconds, metadata=_call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            raise _client_error("GetContactsByIds", e) from e
        return list(response.contacts)

    async def validate_contact_detailed(self, contact_id: int) -> ContactValidation:
        """Validate that the contact exists and is active; the reason when it is not."""
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
