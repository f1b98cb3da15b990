"""
================================================================
FILE: test_grpc_auth.py
PATH: /libs/lkern-common/tests/test_grpc_auth.py
DESCRIPTION: Tests of gRPC authorisation: declared scopes, client certificate identity, tokens
VERSION: v1.0.0
UPDATED: 2026-12-02 03:20:00
================================================================

A real `GrpcServer` on mutual TLS (a dev PKI made for the session) with a small contacts
servicer; callers connect with certificates of the same CA or of another one. The bearer-token
path is tested through the server's token hook (a stand-in for the REST token verifier).
"""

# === IMPORTS ===
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lkern_common.auth import InvalidTokenError
from lkern_common.grpc_auth import Principal, current_principal, requires_scope
from lkern_common.grpc_clients.contacts import CONTACTS_SERVICE_NAME
from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_common.grpc_server import GrpcServer
from lkern_common.grpc_tls import TlsConfigurationError, TlsFiles
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TEST_CLIENT, tls_channel

# === CONSTANTS ===
SERVER = "lkms101-contacts"
CALLER = "lkms102-orders"
TOKENS = {
    "reader-token": Principal("jana", frozenset({"contacts:read"}), "token"),
    "orders-only-token": Principal("peter", frozenset({"orders:read"}), "token"),
}


# === SERVICER ===
class WhoAmIServicer(contacts_pb2_grpc.ContactsServiceServicer):
    """Answers GetContact with the caller's subject as the contact's name."""

    @requires_scope("contacts:read")
    async def GetContact(self, request: Any, context: Any) -> contacts_pb2.GetContactResponse:
        principal = current_principal.get()
        assert principal is not None
        contact = contacts_pb2.Contact(id=request.id, name=principal.subject, email=principal.kind)
        return contacts_pb2.GetContactResponse(contact=contact)

    @requires_scope("contacts:read")
    async def GetContactsByIds(self, request: Any, context: Any) -> Any:
        return contacts_pb2.GetContactsByIdsResponse()

    @requires_scope("contacts:read", "contacts:admin")
    async def ValidateContact(self, request: Any, context: Any) -> Any:
        return contacts_pb2.ValidateContactResponse(is_valid=True)

    @requires_scope("contacts:read")
    async def ListContacts(self, request: Any, context: Any) -> Any:
        return contacts_pb2.ListContactsResponse()


async def token_principal(token: str) -> Principal:
    """The stand-in token verifier: known tokens only."""
    if token not in TOKENS:
        raise InvalidTokenError("unknown token")
    return TOKENS[token]


# === FIXTURES ===
@pytest.fixture
async def target(dev_pki: DevPki) -> AsyncIterator[str]:
    server = GrpcServer(
        tls=dev_pki.tls_files(SERVER),
        client_scopes={CALLER: ["contacts:read"]},
        token_principal=token_principal,
        host="127.0.0.1",
        port=0,
        grace_seconds=0,
    )
    server.add_servicer(
        contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
        WhoAmIServicer(),
        CONTACTS_SERVICE_NAME,
    )
    port = await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def get_contact(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> contacts_pb2.Contact:
    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    reply = await stub.GetContact(
        contacts_pb2.GetContactRequest(id=7), timeout=5, metadata=metadata
    )
    return reply.contact


async def status_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


# === DECLARATIONS ===
def test_a_servicer_with_an_undeclared_method_is_refused(dev_pki: DevPki) -> None:
    class Careless(WhoAmIServicer):
        async def GetContactsByIds(self, request: Any, context: Any) -> Any:  # no scope
            return contacts_pb2.GetContactsByIdsResponse()

    server = GrpcServer(tls=dev_pki.tls_files(SERVER))
    with pytest.raises(RuntimeError, match="GetContactsByIds declare no required scope"):
        server.add_servicer(
            contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
            Careless(),
            CONTACTS_SERVICE_NAME,
        )


def test_requires_scope_needs_a_scope() -> None:
    with pytest.raises(ValueError):
        requires_scope()


def test_missing_tls_files_are_a_clear_error(tmp_path: Any) -> None:
    files = TlsFiles(ca=tmp_path / "ca.crt", cert=tmp_path / "x.crt", key=tmp_path / "x.key")
    with pytest.raises(TlsConfigurationError, match="GRPC_TLS_CA: cannot read"):
        files.server_credentials()


# === CLIENT CERTIFICATES ===
async def test_a_known_service_is_its_certificate_name(target: str, dev_pki: DevPki) -> None:
    async with tls_channel(dev_pki, target, CALLER) as channel:
        contact = await get_contact(channel)
    assert (contact.name, contact.email) == (CALLER, "service")


async def test_every_declared_scope_is_needed(target: str, dev_pki: DevPki) -> None:
    async with tls_channel(dev_pki, target, CALLER) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        call = stub.ValidateContact(contacts_pb2.ValidateContactRequest(id=1), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == "Scope contacts:admin needed"


async def test_an_unknown_service_is_denied_but_health_is_public(
    target: str, dev_pki: DevPki
) -> None:
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        assert await status_of(get_contact(channel)) == grpc.StatusCode.PERMISSION_DENIED
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_another_ca_and_no_certificate_fail_the_handshake(
    target: str, dev_pki: DevPki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = DevPki(tmp_path_factory.mktemp("other-ca")).ensure([CALLER])
    files = other.tls_files(CALLER)
    ca = dev_pki.ca_file.read_bytes()
    foreign = grpc.ssl_channel_credentials(ca, files.key.read_bytes(), files.cert.read_bytes())
    anonymous = grpc.ssl_channel_credentials(ca)
    for credentials in (foreign, anonymous):
        async with grpc.aio.secure_channel(target, credentials) as channel:
            assert await status_of(get_contact(channel)) == grpc.StatusCode.UNAVAILABLE


# === BEARER TOKENS ===
async def test_a_valid_token_acts_as_its_subject(target: str, dev_pki: DevPki) -> None:
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        contact = await get_contact(channel, (("authorization", "Bearer reader-token"),))
    assert (contact.name, contact.email) == ("jana", "token")


async def test_a_token_without_the_scope_is_denied_and_a_bad_one_unauthenticated(
    target: str, dev_pki: DevPki
) -> None:
    async with tls_channel(dev_pki, target, CALLER) as channel:
        other_scope = get_contact(channel, (("authorization", "Bearer orders-only-token"),))
        assert await status_of(other_scope) == grpc.StatusCode.PERMISSION_DENIED
        # A token replaces the certificate's scopes: a bad one is refused even for orders.
        for value in ("Bearer forged", "Bearer ", "Basic reader-token"):
            bad = get_contact(channel, (("authorization", value),))
            assert await status_of(bad) == grpc.StatusCode.UNAUTHENTICATED
