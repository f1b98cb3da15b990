"""
================================================================
FILE: test_auth.py
PATH: /services/lkms102-orders/tests/test_auth.py
DESCRIPTION: Authentication and scopes against the real orders app; every route declares a scope
VERSION: v1.2.0
UPDATED: 2026-12-02 06:40:00
================================================================

The ways a token can be bad are tested once, against contacts (same shared code); here: orders'
routes need a token and the orders scopes, and none is open by accident.
"""

# === IMPORTS ===
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.database import Database
from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE, ORDERS_READ
from lkern_common.outbox import OutboxEvent
from lkern_common.web.security import app_routes, declared_scopes, is_public
from lkern_devstack.testing import TestTokens
from tests.conftest import ContactsService

# === CONSTANTS ===
API = "/api/v1/orders/"
ROUTES = [
    ("GET", API),
    ("GET", f"{API}1"),
    ("POST", API),
    ("PUT", f"{API}1"),
    ("POST", f"{API}1/status"),
    ("DELETE", f"{API}1"),
]


# === TESTS ===
@pytest.mark.parametrize(("method", "url"), ROUTES)
async def test_every_api_route_without_a_token_is_401(
    anonymous_client: httpx.AsyncClient, method: str, url: str
) -> None:
    response = await anonymous_client.request(method, url, json={})
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_token_is_401_invalid_token(anonymous_client: httpx.AsyncClient) -> None:
    response = await anonymous_client.get(API, headers={"Authorization": "Bearer a.b.c"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_read_only_token_cannot_change_orders(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    read_only = tokens.bearer(ORDERS_READ)
    assert (await anonymous_client.get(API, headers=read_only)).status_code == 200
    for method, url in ROUTES[2:]:
        response = await anonymous_client.request(method, url, json={}, headers=read_only)
        assert response.status_code == 403, (method, url, response.text)
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", scope="orders:write"'
        )


async def test_contacts_scopes_do_not_open_orders(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    response = await anonymous_client.get(API, headers=tokens.bearer(CONTACTS_READ, CONTACTS_WRITE))
    assert response.status_code == 403
    assert response.json() == {"detail": "This operation needs the scope orders:read"}


def test_every_route_is_public_or_declares_its_scope(app: FastAPI) -> None:
    declared = {}
    for name, original, served in app_routes(app):
        if is_public(original):
            continue
        scopes = declared_scopes(served)
        assert scopes, f"{name} is neither public nor declares a scope"
        declared[name] = scopes
    assert declared == {
        "GET /api/v1/orders/": ("orders:read",),
        "GET /api/v1/orders/{order_id}": ("orders:read",),
        "POST /api/v1/orders/": ("orders:write",),
        "PUT /api/v1/orders/{order_id}": ("orders:write",),
        "POST /api/v1/orders/{order_id}/status": ("orders:write",),
        "DELETE /api/v1/orders/{order_id}": ("orders:write",),
        "GET /config/log-level": ("lkern:admin",),
        "PUT /config/log-level": ("lkern:admin",),
        "POST /api/v1/read-models/contacts/resync": ("lkern:admin",),
    }


# === WHO DID IT ===
async def test_changes_and_status_changes_record_who_made_them(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens, contacts: ContactsService, db: Database
) -> None:
    async with db.transaction() as session:
        before = await session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0)))
    contact = await contacts.create_contact(name="Who Did It")
    alice, bob = tokens.bearer(subject="alice"), tokens.bearer(subject="bob")
    line = {"description": "Widget", "quantity": "1", "unit_price": "5.00"}
    created = await anonymous_client.post(
        API, json={"contact_id": contact["id"], "lines": [line]}, headers=alice
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["created_by"] == "alice"
    assert order["updated_by"] is order["status_changed_by"] is order["status_changed_at"] is None

    confirmed = await anonymous_client.post(
        f"{API}{order['id']}/status", json={"status": "confirmed"}, headers=bob
    )
    assert confirmed.status_code == 200, confirmed.text
    shown = (await anonymous_client.get(f"{API}{order['id']}", headers=alice)).json()
    assert shown["created_by"] == "alice"
    assert shown["updated_by"] == shown["status_changed_by"] == "bob"
    assert shown["status_changed_at"] is not None

    async with db.transaction() as session:
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id > before, OutboxEvent.key == str(order["id"]))
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert [(e.payload["event_type"], e.payload["actor"]) for e in events] == [
        ("OrderCreated", "alice"),
        ("OrderStatusChanged", "bob"),
    ]
    assert events[1].payload["order"]["status_changed_by"] == "bob"
