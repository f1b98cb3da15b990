"""
================================================================
FILE: test_api.py
PATH: /services/lkms102-orders/tests/test_api.py
DESCRIPTION: REST API tests against a real PostgreSQL and a real contacts service process
VERSION: v1.2.2
UPDATED: 2026-12-02 13:40:00
================================================================
"""

# === IMPORTS ===
import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select

from app.database import Database
from app.models.contact import ContactReadModel
from app.models.order import Order
from app.services.contacts_read_model import ContactState, apply_contact_snapshot
from lkern_common.contracts import EVENTS_BY_TYPE
from lkern_common.contracts.json_schemas import committed_schema
from lkern_common.outbox.model import OutboxEvent
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TestDatabase, recorded_queries
from tests.conftest import ORDERS_API as API
from tests.conftest import (
    ContactsService,
    http_client,
    make_settings,
    read_topic,
    running_app,
)

# === CONSTANTS ===
NUMBER_PATTERN = re.compile(r"^ORD-\d{4}-\d{6,}$")
LINE = {"description": "Widget", "quantity": "2", "unit_price": "19.99"}


# === HELPERS ===
async def create(client: httpx.AsyncClient, contact_id: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contact_id": contact_id, "lines": [LINE]}
    body.update(fields)
    response = await client.post(API, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def set_status(client: httpx.AsyncClient, order_id: int, status: str) -> httpx.Response:
    return await client.post(f"{API}{order_id}/status", json={"status": status})


@pytest.fixture
async def contact(contacts: ContactsService) -> dict[str, Any]:
    """An active contact in the contacts service."""
    return await contacts.create_contact(name="Peter Malý")


async def read_model_row(db: Database, contact_id: int) -> ContactReadModel | None:
    async with db.transaction() as session:
        row: ContactReadModel | None = await session.get(ContactReadModel, contact_id)
        return row


# === CREATE / GET ===
async def test_create_returns_201_with_the_documented_contract(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    response = await client.post(
        API,
        json={
            "contact_id": contact["id"],
            "currency": "EUR",
            "lines": [
                {"description": "Widget", "quantity": "2", "unit_price": "19.99"},
                {"description": "Service hour", "quantity": 1.5, "unit_price": 40},
            ],
            "notes": "Deliver on Monday",
        },
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert set(order) == {
        "id",
        "number",
        "status",
        "currency",
        "lines",
        "total",
        "notes",
        "contact",
        "created_at",
        "updated_at",
        "version",
        "created_by",
        "updated_by",
        "status_changed_by",
        "status_changed_at",
    }
    assert NUMBER_PATTERN.match(order["number"]), order["number"]
    assert order["number"][4:8] == order["created_at"][:4]
    assert order["status"] == "draft"
    assert order["currency"] == "EUR"
    assert order["lines"] == [
        {
            "description": "Widget",
            "quantity": "2.000",
            "unit_price": "19.99",
            "line_total": "39.98",
        },
        {
            "description": "Service hour",
            "quantity": "1.500",
            "unit_price": "40.00",
            "line_total": "60.00",
        },
    ]
    assert order["total"] == "99.98"
    assert order["notes"] == "Deliver on Monday"
    assert order["contact"] == {
        "id": contact["id"],
        "name": "Peter Malý",
        "email": contact["email"],
    }
    assert order["version"] == 1
    assert order["updated_at"] is None


async def test_currency_defaults_to_eur_and_is_normalized(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    assert (await create(client, contact["id"]))["currency"] == "EUR"
    assert (await create(client, contact["id"], currency="czk"))["currency"] == "CZK"


async def test_get_returns_the_order_and_404_when_unknown(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    response = await client.get(f"{API}{order['id']}")
    assert response.status_code == 200
    assert response.json() == order

    missing = await client.get(f"{API}999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Order with id 999999 not found"}


async def test_line_total_rounds_half_up_and_total_is_the_sum(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(
        client,
        contact["id"],
        lines=[
            # 0.5 x 0.25 = 0.125 -> 0.13 (half up; banker's rounding would give 0.12)
            {"description": "a", "quantity": "0.5", "unit_price": "0.25"},
            # 0.1 three times: exact decimal arithmetic, no 0.30000000000000004
            {"description": "b", "quantity": 1, "unit_price": 0.1},
            {"description": "c", "quantity": 1, "unit_price": 0.1},
            {"description": "d", "quantity": 1, "unit_price": 0.1},
            # 0.333 x 0.05 = 0.01665 -> 0.02
            {"description": "e", "quantity": "0.333", "unit_price": "0.05"},
        ],
    )
    assert [line["line_total"] for line in order["lines"]] == [
        "0.13",
        "0.10",
        "0.10",
        "0.10",
        "0.02",
    ]
    assert order["total"] == "0.45"


async def test_concurrent_creates_get_distinct_numbers(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    body = {"contact_id": contact["id"], "lines": [LINE]}
    responses = await asyncio.gather(*(client.post(API, json=body) for _ in range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    numbers = {r.json()["number"] for r in responses}
    assert len(numbers) == 20
    assert all(NUMBER_PATTERN.match(number) for number in numbers)


# === INVALID INPUT ===
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lines": []}, "at least 1 item"),
        ({"lines": None}, "valid list"),
        ({"currency": "XYZ"}, "not an ISO 4217 currency code"),
        ({"currency": "EURO"}, "not an ISO 4217 currency code"),
        ({"contact_id": 0}, "greater than or equal to 1"),
        ({"contact_id": 2**31}, "less than or equal"),
        ({"contact_id": "abc"}, "valid integer"),
        ({"contact_id": True}, "valid integer"),
        ({"contact_id": "1"}, "valid integer"),
        ({"contact_id": 1, "id": 5}, "Extra inputs are not permitted"),
        ({"status": "confirmed"}, "Extra inputs are not permitted"),
        ({"notes": "a\x00b"}, "text_not_storable"),
        ({"lines": [{**LINE, "description": "\x00"}]}, "text_not_storable"),
        ({"lines": [{**LINE, "colour": "red"}]}, "Extra inputs are not permitted"),
        ({"notes": "x" * 4001}, "at most 4000"),
        ({"lines": [{**LINE, "quantity": "NaN"}]}, "finite number"),
        ({"lines": [{**LINE, "unit_price": "Infinity"}]}, "finite number"),
        ({"lines": [{**LINE, "unit_price": "-Infinity"}]}, "finite number"),
        ({"lines": [{**LINE, "unit_price": "19.999"}]}, "no more than 2 decimal places"),
        ({"lines": [{**LINE, "quantity": "1.0001"}]}, "no more than 3 decimal places"),
        ({"lines": [{**LINE, "quantity": "0"}]}, "greater than 0"),
        ({"lines": [{**LINE, "quantity": -1}]}, "greater than 0"),
        ({"lines": [{**LINE, "unit_price": "-0.01"}]}, "greater than or equal to 0"),
        ({"lines": [{**LINE, "unit_price": "abc"}]}, "valid decimal"),
        ({"lines": [{**LINE, "unit_price": True}]}, "Decimal input"),
        ({"lines": [{**LINE, "quantity": "12345678901"}]}, "no more than 9 digits before"),
        ({"lines": [{**LINE, "description": "   "}]}, "at least 1 character"),
        ({"lines": [{"quantity": "1", "unit_price": "1"}]}, "Field required"),
        (
            {"lines": [{**LINE, "quantity": "999999999", "unit_price": "9999999999"}]},
            "exceeds the maximum amount",
        ),
    ],
)
async def test_invalid_order_is_422(
    client: httpx.AsyncClient, change: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"contact_id": 1, "lines": [LINE]}
    body.update(change)
    response = await client.post(API, json=body)
    assert response.status_code == 422, response.text
    assert message in response.text


@pytest.mark.parametrize(
    "change",
    [{"notes": "a\x00b"}, {"lines": [{**LINE, "description": "x\x00"}]}, {"version": 9}],
)
async def test_invalid_edit_is_422_and_changes_nothing(
    client: httpx.AsyncClient, contact: dict[str, Any], change: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    response = await client.put(f"{API}{order['id']}", json=change)
    assert response.status_code == 422, response.text
    assert (await client.get(f"{API}{order['id']}")).json() == order


async def test_nan_and_infinity_json_literals_are_422(client: httpx.AsyncClient) -> None:
    for literal in (b"NaN", b"Infinity"):
        raw = (
            b'{"contact_id": 1, "lines": [{"description": "x", "quantity": '
            + literal
            + b', "unit_price": "1"}]}'
        )
        response = await client.post(API, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", API, {"params": {"limit": 0}}),
        ("GET", API, {"params": {"limit": 1001}}),
        ("GET", API, {"params": {"skip": -1}}),
        ("GET", API, {"params": {"status": "shipped"}}),
        ("GET", API, {"params": {"contact_id": "x"}}),
        ("GET", f"{API}abc", {}),
        ("GET", f"{API}99999999999", {}),
        ("PUT", f"{API}abc", {"json": {}}),
        ("DELETE", f"{API}1.5", {}),
        ("POST", f"{API}1/status", {"json": {"status": "shipped"}}),
        ("POST", f"{API}1/status", {"json": {}}),
        ("POST", API, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, url, **kwargs)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


# === CONTACT VALIDATION ===
async def test_unknown_contact_is_400_with_the_reason_from_contacts(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post(API, json={"contact_id": 987654, "lines": [LINE]})
    assert response.status_code == 400
    assert response.json() == {"detail": "Contact with id 987654 not found"}
    async with db.transaction() as session:
        assert (await session.scalars(select(Order))).all() == []


async def test_inactive_contact_is_400(
    client: httpx.AsyncClient, contacts: ContactsService
) -> None:
    inactive = await contacts.create_contact()
    await contacts.update_contact(inactive["id"], is_active=False)
    response = await client.post(API, json={"contact_id": inactive["id"], "lines": [LINE]})
    assert response.status_code == 400
    assert response.json() == {"detail": f"Contact {inactive['id']} is inactive"}


async def test_contact_unknown_to_the_read_model_is_fetched_and_stored(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    assert order["contact"]["name"] == "Peter Malý"
    row = await read_model_row(db, contact["id"])
    assert row is not None
    assert (row.name, row.email, row.is_active, row.deleted) == (
        "Peter Malý",
        contact["email"],
        True,
        False,
    )
    assert row.version == contact["version"]


async def test_newer_read_model_data_is_not_overwritten_by_get_contact(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    # The read model already has a newer version (its event overtook contacts' own answer).
    async with db.transaction() as session:
        await apply_contact_snapshot(
            session,
            ContactState(
                id=contact["id"],
                name="From a newer event",
                email="newer@example.com",
                is_active=True,
                version=contact["version"] + 5,
            ),
        )
    order = await create(client, contact["id"])
    assert order["contact"]["name"] == "From a newer event"
    row = await read_model_row(db, contact["id"])
    assert row is not None
    assert row.version == contact["version"] + 5


@pytest.mark.parametrize("state", ["deleted", "inactive"])
async def test_read_model_ahead_of_contacts_is_repaired_from_its_answer(
    client: httpx.AsyncClient,
    contacts: ContactsService,
    contact: dict[str, Any],
    db: Database,
    caplog: pytest.LogCaptureFixture,
    state: str,
) -> None:
    # A buggy or replayed producer left a version contacts never reached: left alone, every
    # real event would be skipped as older for ever.
    async with db.transaction() as session:
        await apply_contact_snapshot(
            session,
            ContactState(
                id=contact["id"],
                name="Bogus",
                email="bogus@example.com",
                is_active=state != "inactive",
                version=contact["version"] + 5,
                deleted=state == "deleted",
            ),
        )
    with caplog.at_level(logging.WARNING):
        order = await create(client, contact["id"])
    assert order["contact"]["name"] == contact["name"]
    row = await read_model_row(db, contact["id"])
    assert row is not None
    assert (row.version, row.name, row.deleted, row.is_active) == (
        contact["version"],
        contact["name"],
        False,
        True,
    )
    assert any("repaired from contacts' answer" in r.getMessage() for r in caplog.records)
    # The next real change applies again.
    renamed = await contacts.update_contact(contact["id"], name="Renamed")
    async with db.transaction() as session:
        applied = await apply_contact_snapshot(
            session,
            ContactState(
                id=contact["id"],
                name="Renamed",
                email=contact["email"],
                is_active=True,
                version=renamed["version"],
            ),
        )
    assert applied


async def test_stale_inactive_read_model_is_corrected_by_contacts(
    client: httpx.AsyncClient, contacts: ContactsService, db: Database
) -> None:
    contact = await contacts.create_contact()
    await contacts.update_contact(contact["id"], is_active=False)
    reactivated = await contacts.update_contact(contact["id"], is_active=True)
    # The read model saw the deactivation but not yet the reactivation event.
    async with db.transaction() as session:
        await apply_contact_snapshot(
            session,
            ContactState(
                id=contact["id"],
                name=contact["name"],
                email=contact["email"],
                is_active=False,
                version=reactivated["version"] - 1,
            ),
        )
    order = await create(client, contact["id"])
    assert order["status"] == "draft"
    row = await read_model_row(db, contact["id"])
    assert row is not None
    assert (row.is_active, row.version) == (True, reactivated["version"])


async def test_response_shows_the_current_name_and_keeps_the_snapshot(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    async with db.transaction() as session:
        await apply_contact_snapshot(
            session,
            ContactState(
                id=contact["id"],
                name="Peter Veľký",
                email="peter@new.example",
                is_active=True,
                version=contact["version"] + 1,
            ),
        )
    shown = (await client.get(f"{API}{order['id']}")).json()
    assert shown["contact"] == {
        "id": contact["id"],
        "name": "Peter Veľký",
        "email": "peter@new.example",
    }
    listed = (await client.get(API, params={"contact_id": contact["id"]})).json()
    assert listed[0]["contact"]["name"] == "Peter Veľký"
    async with db.transaction() as session:
        stored = await session.get(Order, order["id"])
        assert stored is not None
        assert stored.contact_name == "Peter Malý"  # the snapshot taken at creation


async def test_confirm_validates_the_contact_again(
    client: httpx.AsyncClient, contacts: ContactsService
) -> None:
    contact = await contacts.create_contact()
    order = await create(client, contact["id"])
    await contacts.update_contact(contact["id"], is_active=False)
    response = await set_status(client, order["id"], "confirmed")
    assert response.status_code == 400
    assert response.json() == {"detail": f"Contact {contact['id']} is inactive"}
    assert (await client.get(f"{API}{order['id']}")).json()["status"] == "draft"
    # Cancelling does not need the contact.
    assert (await set_status(client, order["id"], "cancelled")).status_code == 200


# === LIST ===
async def test_list_pagination_filters_and_total(
    client: httpx.AsyncClient, contacts: ContactsService
) -> None:
    first = await contacts.create_contact()
    second = await contacts.create_contact()
    ids = [(await create(client, first["id"], notes=f"n{i}"))["id"] for i in range(5)]
    other = await create(client, second["id"])
    await set_status(client, ids[0], "confirmed")
    await set_status(client, ids[1], "cancelled")

    page = await client.get(API, params={"skip": 1, "limit": 3})
    assert page.status_code == 200
    assert [o["id"] for o in page.json()] == ids[1:4]
    assert page.headers["X-Total-Count"] == "6"

    by_contact = await client.get(API, params={"contact_id": second["id"]})
    assert [o["id"] for o in by_contact.json()] == [other["id"]]
    assert by_contact.headers["X-Total-Count"] == "1"

    drafts = await client.get(API, params={"status": "draft", "contact_id": first["id"]})
    assert [o["id"] for o in drafts.json()] == ids[2:]
    assert drafts.headers["X-Total-Count"] == "3"
    # Both filters on a page that does not tell the total: the count has both filters too.
    draft_page = await client.get(
        API, params={"status": "draft", "contact_id": first["id"], "skip": 1, "limit": 1}
    )
    assert [o["id"] for o in draft_page.json()] == ids[3:4]
    assert draft_page.headers["X-Total-Count"] == "3"

    confirmed = await client.get(API, params={"status": "confirmed", "limit": 1})
    assert [o["number"] for o in confirmed.json()] == [
        (await client.get(f"{API}{ids[0]}")).json()["number"]
    ]

    beyond = await client.get(API, params={"skip": 100})
    assert beyond.json() == []
    assert beyond.headers["X-Total-Count"] == "6"


async def test_list_reads_a_page_with_a_fixed_number_of_queries(
    client: httpx.AsyncClient, contacts: ContactsService, app: FastAPI
) -> None:
    for _ in range(3):
        contact = await contacts.create_contact()
        await create(client, contact["id"])
    app_db: Database = app.state.db
    async with recorded_queries(app_db) as statements:
        response = await client.get(API)
    assert len(response.json()) == 3
    assert all(len(order["lines"]) == 1 for order in response.json())
    selects = [s for s in statements if "FROM orders" in s or "FROM order_lines" in s]
    # One query for orders joined with their contacts, one for all their lines.
    assert len(selects) == 2, selects


async def test_get_reads_an_order_its_lines_and_contact_in_one_statement(
    client: httpx.AsyncClient, contact: dict[str, Any], app: FastAPI
) -> None:
    second = {"description": "Second", "quantity": "2", "unit_price": "5"}
    order = await create(client, contact["id"], lines=[LINE, second])
    bare = await create(client, contact["id"])
    app_db: Database = app.state.db
    async with recorded_queries(app_db) as statements:
        response = await client.get(f"{API}{order['id']}")
        missing = await client.get(f"{API}{bare['id'] + 1000}")
    assert response.json() == order  # lines in their order, the contact's name and email
    assert missing.status_code == 404
    selects = [s for s in statements if "FROM orders" in s or "FROM order_lines" in s]
    assert len(selects) == 2, selects  # one per GET


# === UPDATE ===
async def test_put_edits_lines_and_notes_of_a_draft(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(
        client,
        contact["id"],
        lines=[LINE, {"description": "Second", "quantity": "1", "unit_price": "5"}],
        notes="first",
    )
    notes_only = await client.put(f"{API}{order['id']}", json={"notes": "changed"})
    assert notes_only.status_code == 200, notes_only.text
    assert notes_only.json()["notes"] == "changed"
    assert notes_only.json()["lines"] == order["lines"]
    assert notes_only.json()["version"] == 2
    assert notes_only.json()["updated_at"] is not None

    fewer = await client.put(
        f"{API}{order['id']}",
        json={"lines": [{"description": "Only", "quantity": "3", "unit_price": "1.10"}]},
    )
    assert fewer.status_code == 200, fewer.text
    assert fewer.json()["lines"] == [
        {"description": "Only", "quantity": "3.000", "unit_price": "1.10", "line_total": "3.30"}
    ]
    assert fewer.json()["total"] == "3.30"
    assert fewer.json()["notes"] == "changed"
    assert fewer.json()["version"] == 3

    more = await client.put(
        f"{API}{order['id']}",
        json={"lines": [LINE, LINE, LINE], "notes": None},
    )
    assert more.status_code == 200, more.text
    assert more.json()["total"] == "119.94"
    assert len(more.json()["lines"]) == 3
    assert more.json()["notes"] is None
    assert more.json()["version"] == 4
    assert (await client.get(f"{API}{order['id']}")).json() == more.json()


async def test_put_with_nothing_changed_keeps_the_version(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"], notes="same")
    response = await client.put(f"{API}{order['id']}", json={"notes": "same", "lines": [LINE]})
    assert response.status_code == 200
    assert response.json()["version"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"status": "confirmed"},
        {"currency": "USD"},
        {"lines": None},
        {"lines": []},
        {"lines": [{**LINE, "unit_price": "1.001"}]},
    ],
)
async def test_put_refuses_other_fields_and_bad_lines(
    client: httpx.AsyncClient, contact: dict[str, Any], body: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    response = await client.put(f"{API}{order['id']}", json=body)
    assert response.status_code == 422, response.text


async def test_put_on_a_confirmed_order_is_409_naming_the_status(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    await set_status(client, order["id"], "confirmed")
    response = await client.put(f"{API}{order['id']}", json={"notes": "late"})
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Order {order['number']} is confirmed: only draft orders can be edited"
    }
    assert (await client.put(f"{API}424242", json={"notes": "x"})).status_code == 404


# === STATUS ===
async def test_status_walks_the_state_machine(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    confirmed = await set_status(client, order["id"], "confirmed")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["version"] == 2
    fulfilled = await set_status(client, order["id"], "fulfilled")
    assert fulfilled.json()["status"] == "fulfilled"
    assert fulfilled.json()["version"] == 3

    again = await set_status(client, order["id"], "cancelled")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"Order {order['number']} is fulfilled: it cannot change to cancelled "
        "(fulfilled is a final status)"
    }


@pytest.mark.parametrize(
    ("path", "target", "current", "allowed"),
    [
        ([], "fulfilled", "draft", "allowed from draft: confirmed, cancelled"),
        ([], "draft", "draft", "allowed from draft: confirmed, cancelled"),
        (["confirmed"], "draft", "confirmed", "allowed from confirmed: fulfilled, cancelled"),
        (["cancelled"], "confirmed", "cancelled", "cancelled is a final status"),
    ],
)
async def test_illegal_transition_is_409_naming_the_current_status(
    client: httpx.AsyncClient,
    contact: dict[str, Any],
    path: list[str],
    target: str,
    current: str,
    allowed: str,
) -> None:
    order = await create(client, contact["id"])
    for step in path:
        assert (await set_status(client, order["id"], step)).status_code == 200
    response = await set_status(client, order["id"], target)
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Order {order['number']} is {current}: it cannot change to {target} ({allowed})"
    }
    assert (await client.get(f"{API}{order['id']}")).json()["status"] == current


async def test_status_of_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    response = await set_status(client, 424242, "confirmed")
    assert response.status_code == 404


# === DELETE ===
async def test_delete_a_draft_returns_204_then_404(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    response = await client.delete(f"{API}{order['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{API}{order['id']}")).status_code == 404
    assert (await client.delete(f"{API}{order['id']}")).status_code == 404


async def test_delete_a_confirmed_order_is_409(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    order = await create(client, contact["id"])
    await set_status(client, order["id"], "confirmed")
    response = await client.delete(f"{API}{order['id']}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Order {order['number']} is confirmed: only draft orders can be deleted"
    }
    assert (await client.get(f"{API}{order['id']}")).status_code == 200


# === ORDER EVENTS (OUTBOX) ===
async def test_each_change_writes_its_event_to_the_outbox(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    await client.put(f"{API}{order['id']}", json={"notes": "n"})
    await set_status(client, order["id"], "cancelled")
    draft = await create(client, contact["id"])
    await client.delete(f"{API}{draft['id']}")
    async with db.transaction() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    events = [(row.topic, row.key, row.payload["event_type"]) for row in rows]
    assert events == [
        ("lkern.orders.created", str(order["id"]), "OrderCreated"),
        ("lkern.orders.updated", str(order["id"]), "OrderUpdated"),
        ("lkern.orders.status_changed", str(order["id"]), "OrderStatusChanged"),
        ("lkern.orders.created", str(draft["id"]), "OrderCreated"),
        ("lkern.orders.deleted", str(draft["id"]), "OrderDeleted"),
    ]
    status_changed = rows[2].payload
    assert status_changed["source"] == "lkms102-orders"
    assert status_changed["previous_status"] == "draft"
    assert status_changed["status"] == "cancelled"
    assert status_changed["order"]["version"] == 3
    assert status_changed["order"]["total"] == "39.98"
    assert {"event_id", "event_version", "occurred_at"} <= set(status_changed)
    # Each value is its shared contract's: it fits the committed schema and parses.
    for row in rows:
        contract = EVENTS_BY_TYPE[row.payload["event_type"]]
        jsonschema_rs.validator_for(committed_schema(contract), validate_formats=True).validate(
            row.payload
        )
        assert contract.parse(row.payload).order_id == int(row.key)


async def test_the_relay_publishes_order_events_keyed_by_order_id(
    client: httpx.AsyncClient, contact: dict[str, Any], broker: LocalBroker
) -> None:
    order = await create(client, contact["id"])
    await set_status(client, order["id"], "confirmed")
    key = str(order["id"]).encode()

    def this_order(record: ConsumerRecord[bytes, bytes]) -> bool:
        # Ids restart with every test's TRUNCATE; numbers never repeat.
        value = orjson.loads(record.value or b"{}")
        return record.key == key and bool(value.get("order_number") == order["number"])

    [created] = await read_topic(broker.bootstrap_servers, "lkern.orders.created", this_order)
    [changed] = await read_topic(
        broker.bootstrap_servers, "lkern.orders.status_changed", this_order
    )
    created_value = orjson.loads(created.value or b"")
    assert created_value["event_type"] == "OrderCreated"
    assert created_value["order"]["number"] == order["number"]
    assert created_value["contact_id"] == contact["id"]
    changed_value = orjson.loads(changed.value or b"")
    assert (changed_value["previous_status"], changed_value["status"]) == ("draft", "confirmed")
    assert dict(changed.headers)["ce_type"] == b"OrderStatusChanged"


async def test_a_refused_change_writes_no_event(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    await set_status(client, order["id"], "confirmed")
    await client.delete(f"{API}{order['id']}")  # 409
    await client.post(API, json={"contact_id": 987654, "lines": [LINE]})  # 400
    async with db.transaction() as session:
        topics = (await session.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id))).all()
    assert topics == ["lkern.orders.created", "lkern.orders.status_changed"]


# === HEALTH / READY / ROOT / DOCS ===
async def test_health_ready_and_root(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {
        "status": "healthy",
        "service": "lkms102-orders",
        "version": "1.0.0",
    }
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["ok"] is True
    assert (await client.get("/")).json() == {
        "service": "lkms102-orders",
        "version": "1.0.0",
        "docs": "/docs",
    }


async def test_openapi_documents_money_as_strings(client: httpx.AsyncClient) -> None:
    openapi = (await client.get("/openapi.json")).json()
    assert "/api/v1/orders/{order_id}/status" in openapi["paths"]
    line = openapi["components"]["schemas"]["OrderLineResponse"]["properties"]
    assert line["line_total"]["type"] == "string"


# === CONTACTS OUTAGE ===
@asynccontextmanager
async def hung_peer() -> AsyncIterator[str]:
    """A TCP address that accepts connections and never answers (a hung contacts service)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_create_waiting_for_contacts_holds_no_pooled_connection(
    test_database: TestDatabase, broker: LocalBroker, dev_pki: DevPki
) -> None:
    # One pooled connection: a create that held it while contacts does not answer (the
    # deadline) would make every read wait behind it.
    async with hung_peer() as target:
        settings = make_settings(
            test_database,
            broker,
            target,
            dev_pki,
            kafka_consumer_enabled=False,
            db_pool_size=1,
            db_max_overflow=0,
            contacts_grpc_timeout_seconds=3.0,
        )
        async with running_app(settings) as application, http_client(application) as client:
            creates = [
                asyncio.create_task(client.post(API, json={"contact_id": 1, "lines": [LINE]}))
                for _ in range(3)
            ]
            await asyncio.sleep(0.3)  # the creates wait for contacts now
            reads = []
            for _ in range(5):
                started = time.monotonic()
                assert (await client.get(API)).status_code == 200
                reads.append(time.monotonic() - started)
            answers = await asyncio.gather(*creates)
    assert max(reads) < 1.0, reads
    assert [answer.status_code for answer in answers] == [503, 503, 503]
    assert all(answer.headers["Retry-After"] for answer in answers)


async def test_contacts_down_is_503_without_changes_and_recovers_after_restart(
    test_database: TestDatabase,
    contacts_database: TestDatabase,
    broker: LocalBroker,
    db: Database,
    dev_pki: DevPki,
) -> None:
    # A contacts process of this test's own, so that stopping it disturbs no other test.
    service = ContactsService(contacts_database, broker.bootstrap_servers, dev_pki)
    await asyncio.to_thread(service.start)
    try:
        contact = await service.create_contact(name="Outage")
        settings = make_settings(
            test_database, broker, service.grpc_target, dev_pki, kafka_consumer_enabled=False
        )
        async with running_app(settings) as application, http_client(application) as client:
            body = {"contact_id": contact["id"], "lines": [LINE]}
            draft = await create(client, contact["id"])

            await asyncio.to_thread(service.stop)
            down = await client.post(API, json=body)
            assert down.status_code == 503
            assert down.json() == {
                "detail": f"The contacts service is unavailable, so contact {contact['id']} "
                "cannot be validated; no order was changed. Try again later."
            }
            assert down.headers["Retry-After"] == "1"
            confirm = await set_status(client, draft["id"], "confirmed")
            assert confirm.status_code == 503
            assert confirm.headers["Retry-After"] == "1"
            assert (await client.get(f"{API}{draft['id']}")).json()["status"] == "draft"
            # Found unreachable CONTACTS_GRPC_BREAKER_FAILURE_THRESHOLD times in a row: the
            # circuit is open, and Retry-After says when it probes again.
            for _ in range(settings.contacts_grpc_breaker_failure_threshold):
                await client.post(API, json=body)
            refused = await client.post(API, json=body)
            assert refused.status_code == 503
            assert application.state.contacts_client.breaker.state == "opened"
            open_s = settings.contacts_grpc_breaker_open_seconds
            assert 1 <= int(refused.headers["Retry-After"]) <= open_s
            async with db.transaction() as session:
                assert len((await session.scalars(select(Order))).all()) == 1
            # Reads do not need contacts.
            assert (await client.get(API)).status_code == 200

            await asyncio.to_thread(service.start)
            # The client reconnects on its own; until it has, answers stay a clean 503.
            deadline = time.monotonic() + 30
            while (response := await client.post(API, json=body)).status_code == 503:
                assert time.monotonic() < deadline, "orders did not recover after the restart"
                await asyncio.sleep(0.2)
            assert response.status_code == 201, response.text
            assert response.json()["contact"]["name"] == "Outage"
            assert (await set_status(client, draft["id"], "confirmed")).status_code == 200
    finally:
        await asyncio.to_thread(service.stop)
