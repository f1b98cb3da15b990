"""
================================================================
FILE: test_grpc.py
PATH: /services/lkms102-orders/tests/test_grpc.py
DESCRIPTION: gRPC tests: the orders server of the running app (real grpc.aio on a free port),
             called through the client stubs other services use (lkern_common.grpc_contracts)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from app.grpc.orders_service import OrdersServicer
from app.spec import GRPC_SERVICE_NAME as SERVICE_NAME
from lkern_common.grpc_auth import PUBLIC_SERVICES, method_requirements
from lkern_common.grpc_contracts.orders import orders_pb2, orders_pb2_grpc
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TEST_CLIENT, tls_channel
from tests.conftest import CONTACTS, ORDERS_API, ContactsService

# === CONSTANTS ===
LINES = [
    {"description": "Widget", "quantity": "2", "unit_price": "19.99"},
    {"description": "Half", "quantity": "0.5", "unit_price": "0.25"},
]


# === FIXTURES ===
@pytest.fixture
def target(app: FastAPI) -> str:
    return f"127.0.0.1:{app.state.grpc_server.port}"


@pytest.fixture
async def channel(target: str, dev_pki: DevPki) -> AsyncIterator[grpc.aio.Channel]:
    """A channel as the test client (granted orders:read by the test settings)."""
    async with tls_channel(dev_pki, target, TEST_CLIENT) as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> orders_pb2_grpc.OrdersServiceAsyncStub:
    return orders_pb2_grpc.OrdersServiceStub(channel)


async def create_order(client: httpx.AsyncClient, contact_id: int, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        ORDERS_API, json={"contact_id": contact_id, "lines": LINES, **fields}
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


# === TESTS ===
async def test_get_order_returns_the_order_with_money_as_strings(
    client: httpx.AsyncClient,
    contacts: ContactsService,
    stub: orders_pb2_grpc.OrdersServiceAsyncStub,
) -> None:
    contact = await contacts.create_contact(name="Eva")
    created = await create_order(client, contact["id"], notes="gRPC")
    response = await stub.GetOrder(orders_pb2.GetOrderRequest(id=created["id"]), timeout=5)
    order = response.order
    assert order.id == created["id"]
    assert order.number == created["number"]
    assert order.status == "draft"
    assert order.currency == "EUR"
    assert [
        (line.description, line.quantity, line.unit_price, line.line_total) for line in order.lines
    ] == [("Widget", "2.000", "19.99", "39.98"), ("Half", "0.500", "0.25", "0.13")]
    assert order.total == "40.11"
    assert order.notes == "gRPC"
    assert (order.contact.id, order.contact.name, order.contact.email) == (
        contact["id"],
        "Eva",
        contact["email"],
    )
    assert order.version == 1
    assert order.updated_at == ""
    assert order.created_at.startswith(created["created_at"][:19])


async def test_get_unknown_order_is_not_found(
    stub: orders_pb2_grpc.OrdersServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetOrder(orders_pb2.GetOrderRequest(id=424242), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "Order with id 424242 not found"


async def test_get_orders_by_contact_pages_and_counts(
    client: httpx.AsyncClient,
    contacts: ContactsService,
    stub: orders_pb2_grpc.OrdersServiceAsyncStub,
) -> None:
    first = await contacts.create_contact()
    second = await contacts.create_contact()
    ids = [(await create_order(client, first["id"]))["id"] for _ in range(3)]
    await create_order(client, second["id"])

    everything = await stub.GetOrdersByContact(
        orders_pb2.GetOrdersByContactRequest(contact_id=first["id"]), timeout=5
    )
    assert [o.id for o in everything.orders] == ids
    assert everything.total == 3
    page = await stub.GetOrdersByContact(
        orders_pb2.GetOrdersByContactRequest(contact_id=first["id"], skip=1, limit=1), timeout=5
    )
    assert [o.id for o in page.orders] == [ids[1]]
    assert page.total == 3
    none = await stub.GetOrdersByContact(
        orders_pb2.GetOrdersByContactRequest(contact_id=999999), timeout=5
    )
    assert list(none.orders) == []
    assert none.total == 0


@pytest.mark.parametrize(("skip", "limit"), [(-1, 10), (0, 1001), (0, -5)])
async def test_bad_paging_is_invalid_argument(
    stub: orders_pb2_grpc.OrdersServiceAsyncStub, skip: int, limit: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetOrdersByContact(
            orders_pb2.GetOrdersByContactRequest(contact_id=1, skip=skip, limit=limit), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_and_reflection(channel: Any) -> None:
    # (grpc's typing stubs describe the sync channel for these two generated stubs)
    health: Any = health_pb2_grpc.HealthStub(channel)
    for service in ("", "orders.OrdersService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for answer in reflection.ServerReflectionInfo(iter([request]), timeout=5):
        names.update(s.name for s in answer.list_services_response.service)
    assert "orders.OrdersService" in names


# === WHO MAY CALL (mutual TLS, scopes) ===
def test_every_rpc_declares_its_scope() -> None:
    """Every method of the orders service needs a scope (health and reflection are public)."""
    service = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"]
    requirements = method_requirements(OrdersServicer, SERVICE_NAME)
    for method in service.methods:
        assert requirements[f"/{SERVICE_NAME}/{method.name}"] == {"orders:read"}
    assert SERVICE_NAME not in PUBLIC_SERVICES


async def test_a_service_without_the_scope_is_permission_denied(
    target: str, dev_pki: DevPki
) -> None:
    async with tls_channel(dev_pki, target, CONTACTS) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetOrder(orders_pb2.GetOrderRequest(id=1), timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_without_a_client_certificate_the_handshake_is_refused(
    target: str, dev_pki: DevPki
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=dev_pki.ca_file.read_bytes())
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetOrder(orders_pb2.GetOrderRequest(id=1), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
