"""
================================================================
FILE: test_concurrency.py
PATH: /services/lkms102-orders/tests/test_concurrency.py
DESCRIPTION: Conditional requests (ETag, If-Match, If-None-Match) and Idempotency-Key on orders
VERSION: v1.0.0
UPDATED: 2026-12-02 03:00:00
================================================================
"""

# === IMPORTS ===
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, text

from app.database import Database
from lkern_common.outbox.model import OutboxEvent
from lkern_devstack.broker import free_port
from lkern_devstack.testing import wait_for_lock_waiters
from tests.conftest import ORDERS_API as API
from tests.conftest import TOKENS, ContactsService

# === CONSTANTS ===
LINE = {"description": "Widget", "quantity": "2", "unit_price": "19.99"}
WAIT_S = 30.0


# === HELPERS ===
@pytest.fixture
async def contact(contacts: ContactsService) -> dict[str, Any]:
    """An active contact in the contacts service."""
    return await contacts.create_contact(name="Ivan Kováč")


def order_body(contact_id: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contact_id": contact_id, "lines": [LINE]}
    body.update(fields)
    return body


async def create(client: httpx.AsyncClient, contact_id: int) -> dict[str, Any]:
    response = await client.post(API, json=order_body(contact_id))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def events(db: Database) -> list[str]:
    """The event types in the outbox, in order (the tables are emptied after every test)."""
    async with db.transaction() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [row.payload["event_type"] for row in rows]


async def order_count(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(text("SELECT count(*) FROM orders")) or 0)


@pytest.fixture
async def served_app(app: FastAPI) -> AsyncIterator[str]:
    """The orders app behind a real uvicorn server (real sockets), its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


# === ETAG / IF-NONE-MATCH ===
async def test_every_answer_with_an_order_carries_its_version_as_strong_etag(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    created = await client.post(API, json=order_body(contact["id"]))
    assert created.headers["ETag"] == '"1"'
    url = f"{API}{created.json()['id']}"
    assert (await client.get(url)).headers["ETag"] == '"1"'
    edited = await client.put(url, json={"notes": "n"})
    assert edited.headers["ETag"] == '"2"'
    confirmed = await client.post(f"{url}/status", json={"status": "confirmed"})
    assert confirmed.headers["ETag"] == '"3"'
    assert confirmed.json()["version"] == 3


async def test_if_none_match_answers_304_while_unchanged(
    client: httpx.AsyncClient, contact: dict[str, Any]
) -> None:
    url = f"{API}{(await create(client, contact['id']))['id']}"
    unchanged = await client.get(url, headers={"If-None-Match": '"1"'})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == '"1"'
    await client.put(url, json={"notes": "n"})
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 200


# === IF-MATCH ===
async def test_stale_if_match_on_put_delete_and_status_is_412_and_changes_nothing(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    url = f"{API}{order['id']}"
    await client.put(url, json={"notes": "second"})  # version 2: the client's copy is stale
    stale = {"If-Match": '"1"'}
    for refused in (
        await client.put(url, json={"notes": "lost update"}, headers=stale),
        await client.delete(url, headers=stale),
        await client.post(f"{url}/status", json={"status": "confirmed"}, headers=stale),
    ):
        assert refused.status_code == 412, refused.request.method
        assert refused.json()["current_version"] == 2
        assert refused.headers["ETag"] == '"2"'
    current = (await client.get(url)).json()
    assert (current["notes"], current["status"], current["version"]) == ("second", "draft", 2)
    assert await events(db) == ["OrderCreated", "OrderUpdated"]

    current_tag = {"If-Match": '"2"'}
    confirmed = await client.post(
        f"{url}/status", json={"status": "confirmed"}, headers=current_tag
    )
    assert confirmed.status_code == 200
    draft = await create(client, contact["id"])
    assert (
        await client.delete(f"{API}{draft['id']}", headers={"If-Match": '"1"'})
    ).status_code == 204


async def test_concurrent_puts_with_one_if_match_give_one_200_and_412s(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    url = f"{API}{order['id']}"
    racers = 3
    async with db.transaction() as blocker:  # every request reaches the row lock, then all go
        await blocker.execute(
            text("SELECT id FROM orders WHERE id = :id FOR UPDATE"), {"id": order["id"]}
        )
        puts = [
            asyncio.create_task(
                client.put(url, json={"notes": f"writer {n}"}, headers={"If-Match": '"1"'})
            )
            for n in range(racers)
        ]
        await wait_for_lock_waiters(db, racers)
    answers = await asyncio.gather(*puts)
    assert sorted(a.status_code for a in answers) == [200] + [412] * (racers - 1)
    assert (await client.get(url)).json()["version"] == 2
    assert await events(db) == ["OrderCreated", "OrderUpdated"]


# === IDEMPOTENCY KEYS ===
async def test_a_retried_create_with_a_key_makes_one_order(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(API, json=order_body(contact["id"]), headers=key)
    assert first.status_code == 201
    retry = await client.post(API, json=order_body(contact["id"]), headers=key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert await order_count(db) == 1
    assert await events(db) == ["OrderCreated"]
    other = await client.post(API, json=order_body(contact["id"], notes="x"), headers=key)
    assert other.status_code == 422
    assert await order_count(db) == 1


async def test_a_retried_status_change_with_a_key_changes_once(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    order = await create(client, contact["id"])
    url = f"{API}{order['id']}/status"
    key = {"Idempotency-Key": "confirm-once"}
    first = await client.post(url, json={"status": "confirmed"}, headers=key)
    assert first.status_code == 200
    retry = await client.post(url, json={"status": "confirmed"}, headers=key)
    assert retry.status_code == 200  # not the 409 a second confirmation would get
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert await events(db) == ["OrderCreated", "OrderStatusChanged"]
    # The key is scoped to the route: the same key on another order is another request.
    other = await create(client, contact["id"])
    again = await client.post(
        f"{API}{other['id']}/status", json={"status": "confirmed"}, headers=key
    )
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers


async def test_concurrent_duplicates_with_one_key_create_one_order(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body(contact["id"])
    answers = await asyncio.gather(*(client.post(API, json=body, headers=key) for _ in range(6)))
    assert {a.status_code for a in answers} <= {201, 409}
    created = [a for a in answers if a.status_code == 201]
    assert len([a for a in created if "Idempotent-Replayed" not in a.headers]) == 1
    assert len({a.content for a in created}) == 1
    assert await order_count(db) == 1


async def test_a_duplicate_while_the_first_runs_is_409(
    client: httpx.AsyncClient, contact: dict[str, Any], db: Database
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body(contact["id"])
    async with db.transaction() as blocker:  # the first request waits at its INSERT
        await blocker.execute(text("LOCK TABLE orders IN SHARE MODE"))
        first = asyncio.create_task(client.post(API, json=body, headers=key))
        await wait_for_lock_waiters(db, 1)
        duplicate = await asyncio.wait_for(client.post(API, json=body, headers=key), WAIT_S)
        assert duplicate.status_code == 409
    assert (await first).status_code == 201
    assert await order_count(db) == 1


async def test_a_client_that_disconnects_then_retries_gets_one_order(
    served_app: str, contact: dict[str, Any], db: Database
) -> None:
    key = str(uuid.uuid4())
    auth = TOKENS.bearer()["Authorization"]
    body = json.dumps(order_body(contact["id"])).encode()
    host, port = served_app.removeprefix("http://").split(":")
    async with db.transaction() as blocker:  # hold the order at its INSERT...
        await blocker.execute(text("LOCK TABLE orders IN SHARE MODE"))
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST {API} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {key}\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await wait_for_lock_waiters(db, 1)
        writer.close()  # ...while the client gives up: it never sees the answer
        await writer.wait_closed()
    async with httpx.AsyncClient(base_url=served_app, timeout=WAIT_S) as client:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            retry = await client.post(
                API,
                content=body,
                headers={
                    "Idempotency-Key": key,
                    "Content-Type": "application/json",
                    "Authorization": auth,
                },
            )
            if retry.status_code != 409 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)  # the first request is still finishing
    assert retry.status_code == 201, retry.text
    # The first request finished after the client left; the retry gets its answer.
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await order_count(db) == 1
    assert await events(db) == ["OrderCreated"]


# === OPENAPI ===
async def test_openapi_declares_the_headers_and_answers(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def headers_of(operation: dict[str, Any]) -> set[str]:
        return {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}

    one = paths["/api/v1/orders/{order_id}"]
    assert "if-none-match" in headers_of(one["get"])
    assert "304" in one["get"]["responses"]
    for operation in (one["put"], one["delete"], paths["/api/v1/orders/{order_id}/status"]["post"]):
        assert "if-match" in headers_of(operation)
        assert {"412", "428"} <= set(operation["responses"])
    for operation in (
        paths["/api/v1/orders/"]["post"],
        paths["/api/v1/orders/{order_id}/status"]["post"],
    ):
        assert "idempotency-key" in headers_of(operation)
        assert {"409", "422"} <= set(operation["responses"])
