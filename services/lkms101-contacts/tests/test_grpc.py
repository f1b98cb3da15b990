"""
================================================================
FILE: test_grpc.py
PATH: /services/lkms101-contacts/tests/test_grpc.py
DESCRIPTION: gRPC tests: the real grpc.aio server of the app, called through both clients
VERSION: v1.1.0
UPDATED: 2026-12-02 06:40:00
================================================================
"""

# === IMPORTS ===
import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from app.database import Database
from app.grpc.contacts_service import ContactsServicer
from app.spec import GRPC_SERVICE_NAME as SERVICE_NAME
from app.spec import SPEC
from lkern_common.grpc_auth import PUBLIC_SERVICES, method_requirements
from lkern_common.grpc_clients.contacts import (
    AsyncContactsClient,
    ContactsClient,
    ContactsClientSettings,
)
from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_common.grpc_server import DATABASE_UNAVAILABLE_DETAILS
from lkern_common.service import ServiceContext, start_grpc_server
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TEST_CLIENT, make_dev_pki, tls_channel
from tests.conftest import ORDERS, TOKENS

# === CONSTANTS ===
API = "/api/v1/contacts/"


# === FIXTURES ===
@pytest.fixture
def target(app: FastAPI) -> str:
    return f"127.0.0.1:{app.state.grpc_server.port}"


@pytest.fixture
async def async_client(
    target: str, orders_client_settings: ContactsClientSettings
) -> AsyncIterator[AsyncContactsClient]:
    async with AsyncContactsClient(target, settings=orders_client_settings) as client:
        yield client


@pytest.fixture
def sync_client(target: str, orders_client_settings: ContactsClientSettings) -> ContactsClient:
    return ContactsClient(target, settings=orders_client_settings)


@pytest.fixture
async def channel(target: str, dev_pki: DevPki) -> AsyncIterator[grpc.aio.Channel]:
    """A channel as the orders service (a caller with contacts:read)."""
    async with tls_channel(dev_pki, target, ORDERS) as orders_channel:
        yield orders_channel


async def create(client: httpx.AsyncClient, name: str, email: str, **extra: Any) -> int:
    response = await client.post(API, json={"name": name, "email": email, **extra})
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["id"]
    return contact_id


# === GET CONTACT ===
async def test_get_contact_found_through_both_clients(
    client: httpx.AsyncClient, async_client: AsyncContactsClient, sync_client: ContactsClient
) -> None:
    contact_id = await create(client, "Mária", "maria@example.com", phone="+421 1")
    rest = (await client.get(f"{API}{contact_id}")).json()

    found = await async_client.get_contact(contact_id)
    assert found is not None
    assert (found.id, found.name, found.email, found.phone) == (
        contact_id,
        "Mária",
        "maria@example.com",
        "+421 1",
    )
    assert found.is_active is True
    assert found.version == 1
    assert found.updated_at == ""
    # ISO 8601, the same instant the REST API shows
    assert datetime.fromisoformat(found.created_at) == datetime.fromisoformat(rest["created_at"])

    with sync_client:
        same = await asyncio.to_thread(sync_client.get_contact, contact_id)
    assert same == found


async def test_get_contact_not_found(
    async_client: AsyncContactsClient, sync_client: ContactsClient, channel: grpc.aio.Channel
) -> None:
    assert await async_client.get_contact(987654) is None
    with sync_client:
        assert await asyncio.to_thread(sync_client.get_contact, 987654) is None

    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetContact(contacts_pb2.GetContactRequest(id=987654), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Contact with id 987654 not found"


# === VALIDATE CONTACT ===
async def test_validate_contact_active_inactive_missing(
    client: httpx.AsyncClient, async_client: AsyncContactsClient, sync_client: ContactsClient
) -> None:
    active = await create(client, "Active", "active@example.com")
    inactive = await create(client, "Inactive", "inactive@example.com")
    await client.put(f"{API}{inactive}", json={"is_active": False})

    assert await async_client.validate_contact_detailed(active) == (True, "")
    assert await async_client.validate_contact_detailed(inactive) == (
        False,
        f"Contact {inactive} is inactive",
    )
    assert await async_client.validate_contact_detailed(5555) == (
        False,
        "Contact with id 5555 not found",
    )
    with sync_client:
        assert await asyncio.to_thread(sync_client.validate_contact, active) is True
        assert await asyncio.to_thread(sync_client.validate_contact, inactive) is False
        assert await asyncio.to_thread(sync_client.validate_contact, 5555) is False


# === BATCH ===
async def test_batch_returns_existing_contacts_and_skips_missing(
    client: httpx.AsyncClient, async_client: AsyncContactsClient
) -> None:
    ids = [await create(client, f"B{i}", f"b{i}@example.com") for i in range(5)]
    found = await async_client.get_contacts_by_ids([ids[3], 424242, ids[0], ids[3]])
    assert sorted(contact.id for contact in found) == sorted([ids[0], ids[3]])
    assert await async_client.get_contacts_by_ids([]) == []


async def test_batch_over_1000_ids_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetContactsByIds(
            contacts_pb2.GetContactsByIdsRequest(ids=list(range(1, 1002))), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "At most 1000 ids" in (raised.value.details() or "")
    exactly = await stub.GetContactsByIds(
        contacts_pb2.GetContactsByIdsRequest(ids=list(range(1, 1001))), timeout=5
    )
    assert list(exactly.contacts) == []


# === LIST ===
async def test_list_contacts_pages_through_every_contact_in_id_order(
    client: httpx.AsyncClient, async_client: AsyncContactsClient
) -> None:
    ids = [await create(client, f"L{i}", f"l{i}@example.com") for i in range(5)]
    await client.put(f"{API}{ids[1]}", json={"name": "L1 renamed"})
    seen: list[contacts_pb2.Contact] = []
    after_id, pages = 0, 0
    while True:
        page, after_id = await async_client.list_contacts(after_id, page_size=2)
        seen += page
        pages += 1
        if after_id == 0:
            break
    assert [contact.id for contact in seen] == ids
    assert pages == 3
    renamed = seen[1]
    assert (renamed.name, renamed.version) == ("L1 renamed", 2)
    everything, last = await async_client.list_contacts()
    assert ([contact.id for contact in everything], last) == (ids, 0)


@pytest.mark.parametrize("request_fields", [{"page_size": 1001}, {"after_id": -1}])
async def test_list_contacts_refuses_a_bad_page(
    channel: grpc.aio.Channel, request_fields: dict[str, int]
) -> None:
    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListContacts(contacts_pb2.ListContactsRequest(**request_fields), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_contacts_needs_contacts_read(target: str, dev_pki: DevPki) -> None:
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListContacts(contacts_pb2.ListContactsRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == "Scope contacts:read needed"


# === HEALTH / REFLECTION ===
async def test_health_is_serving_while_the_database_answers(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "contacts.ContactsService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_is_not_serving_without_a_database(
    settings: Any, dev_pki: DevPki, app: FastAPI
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    db = Database(unreachable)
    server = await start_grpc_server(
        SPEC, ServiceContext(app, unreachable, db, app.state.token_verifier)
    )
    channel = tls_channel(dev_pki, f"127.0.0.1:{server.port}", ORDERS)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # A call that needs the database is UNAVAILABLE (a client may retry), never a trace.
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetContact(contacts_pb2.GetContactRequest(id=1), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert raised.value.details() == DATABASE_UNAVAILABLE_DETAILS
    finally:
        await channel.close()
        await server.stop(0)
        await db.dispose()


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
        names.update(service.name for service in reply.list_services_response.service)
    assert {"contacts.ContactsService", "grpc.health.v1.Health"} <= names


# === WHO MAY CALL (mutual TLS, scopes) ===
def test_every_rpc_declares_its_scope() -> None:
    """Every method of every service the server registers needs a scope, or is public."""
    service = contacts_pb2.DESCRIPTOR.services_by_name["ContactsService"]
    requirements = method_requirements(ContactsServicer, SERVICE_NAME)
    for method in service.methods:
        assert requirements[f"/{SERVICE_NAME}/{method.name}"] == {"contacts:read"}
    assert SERVICE_NAME not in PUBLIC_SERVICES


async def test_the_running_server_declares_every_method(app: FastAPI) -> None:
    declared = app.state.grpc_server.requirements
    for name in app.state.grpc_server.service_names:
        service = contacts_pb2.DESCRIPTOR.pool.FindServiceByName(name)
        assert {f"/{name}/{m.name}" for m in service.methods} <= set(declared)


async def test_without_a_client_certificate_the_handshake_is_refused(
    target: str, dev_pki: DevPki
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=dev_pki.ca_file.read_bytes())
    async with grpc.aio.secure_channel(target, credentials) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_is_refused(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(
    target: str, tmp_path_factory: pytest.TempPathFactory, dev_pki: DevPki
) -> None:
    other = make_dev_pki(tmp_path_factory.mktemp("other-ca"))
    files = other.tls_files(ORDERS)  # the right name, the wrong CA
    credentials = grpc.ssl_channel_credentials(
        root_certificates=dev_pki.ca_file.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ValidateContact(contacts_pb2.ValidateContactRequest(id=1), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_unknown_service_is_permission_denied_but_may_check_health(
    target: str, dev_pki: DevPki
) -> None:
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetContact(contacts_pb2.GetContactRequest(id=1), timeout=5)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert raised.value.details() == "Scope contacts:read needed"
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_bearer_token_is_checked_like_on_rest(target: str, dev_pki: DevPki) -> None:
    """A tool's certificate has no scopes; its caller's token decides (the app's verifier)."""
    request = contacts_pb2.GetContactRequest(id=987654)
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        reader = (("authorization", f"Bearer {TOKENS.mint(['contacts:read'])}"),)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetContact(request, timeout=5, metadata=reader)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND  # authorised: it ran
        other_scope = (("authorization", f"Bearer {TOKENS.mint(['orders:read'])}"),)
        expired = (("authorization", f"Bearer {TOKENS.mint(['contacts:read'], ttl_seconds=-120)}"),)
        for metadata, code in (
            (other_scope, grpc.StatusCode.PERMISSION_DENIED),
            (expired, grpc.StatusCode.UNAUTHENTICATED),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetContact(request, timeout=5, metadata=metadata)
            assert raised.value.code() == code


async def test_a_bad_bearer_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = contacts_pb2_grpc.ContactsServiceStub(channel)
    for value in ("Bearer not-a-token", "Basic abc"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetContact(
                contacts_pb2.GetContactRequest(id=1),
                timeout=5,
                metadata=(("authorization", value),),
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.details() == "Invalid token"


async def test_reflection_v1_is_served_and_describes_itself(channel: grpc.aio.Channel) -> None:
    # grpc.reflection.v1's messages are v1alpha's under another package name.
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
    ]
    replies = [reply async for reply in info(iter(requests), timeout=5)]
    names = {service.name for service in replies[0].list_services_response.service}
    assert {"contacts.ContactsService", "grpc.reflection.v1.ServerReflection"} <= names
    assert replies[1].file_descriptor_response.file_descriptor_proto


async def test_health_list_answers_every_service(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    list_health = channel.unary_unary(
        "/grpc.health.v1.Health/List",
        request_serializer=health_pb2.HealthListRequest.SerializeToString,
        response_deserializer=health_pb2.HealthListResponse.FromString,
    )
    reply = await list_health(health_pb2.HealthListRequest(), timeout=5)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert reply.statuses["contacts.ContactsService"].status == serving
    assert reply.statuses[""].status == serving
    assert not [record for record in caplog.records if record.levelno >= 40]


# === HOSTILE REQUESTS (docs/errors.md) ===
def _wire_varint(value: int) -> bytes:
    """``value`` as a protobuf varint (two's complement on 64 bits when negative)."""
    value &= 2**64 - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def _raw_call(
    target: str, dev_pki: DevPki, method: str, payload: bytes, identity: str = ORDERS
) -> grpc.aio.AioRpcError:
    async with tls_channel(dev_pki, target, identity) as channel:
        call = channel.unary_unary(f"/contacts.ContactsService/{method}")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(payload, timeout=5)
        return raised.value


async def test_corrupt_request_message_is_invalid_argument(target: str, dev_pki: DevPki) -> None:
    error = await _raw_call(target, dev_pki, "GetContact", b"\x0a\xff\xff\xff")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "The request message could not be decoded"


async def test_a_corrupt_message_of_an_unauthorised_caller_is_refused_for_its_scope(
    target: str, dev_pki: DevPki
) -> None:
    """Authorisation runs before the message is looked at: nothing is said about it."""
    error = await _raw_call(target, dev_pki, "GetContact", b"\x0a\xff\xff\xff", TEST_CLIENT)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("wide", [2**32 + 7, 2**31, -(2**31) - 1])
@pytest.mark.parametrize("method", ["GetContact", "ValidateContact"])
async def test_64_bit_id_is_refused_not_truncated(
    client: httpx.AsyncClient, target: str, dev_pki: DevPki, method: str, wide: int
) -> None:
    await create(client, "Seven", "seven@example.com")  # id 1..7 may exist: none is taken
    error = await _raw_call(target, dev_pki, method, b"\x08" + _wire_varint(wide))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "id is out of range for a 32-bit integer"


async def test_64_bit_id_in_a_batch_is_refused(target: str, dev_pki: DevPki) -> None:
    packed = _wire_varint(1) + _wire_varint(2**40)
    error = await _raw_call(
        target, dev_pki, "GetContactsByIds", b"\x0a" + _wire_varint(len(packed)) + packed
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_negative_int32_id_still_decodes(async_client: AsyncContactsClient) -> None:
    assert await async_client.get_contact(-5) is None  # a valid int32: just no such contact


# === CONCURRENCY ===
async def test_100_concurrent_get_contact_calls_all_answer_right(
    client: httpx.AsyncClient, async_client: AsyncContactsClient
) -> None:
    ids = [await create(client, f"Par {i}", f"par{i}@example.com") for i in range(10)]
    calls = [async_client.get_contact(ids[i % 10]) for i in range(100)]
    results = await asyncio.gather(*calls)
    for index, contact in enumerate(results):
        assert contact is not None
        assert contact.id == ids[index % 10]
        assert contact.name == f"Par {index % 10}"
