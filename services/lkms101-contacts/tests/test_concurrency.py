"""
================================================================
FILE: test_concurrency.py
PATH: /services/lkms101-contacts/tests/test_concurrency.py
DESCRIPTION: Conditional requests (ETag, If-Match, If-None-Match) and Idempotency-Key on contacts
VERSION: v1.0.0
UPDATED: 2026-12-02 02:55:00
================================================================
"""

# === IMPORTS ===
import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select, text

from app.config import Settings
from app.database import Database
from app.main import create_app
from lkern_common.idempotency import IdempotencyKey
from lkern_common.outbox.model import OutboxEvent
from lkern_devstack.testing import eventually, wait_for_lock_waiters
from tests.conftest import TOKENS

# === CONSTANTS ===
API = "/api/v1/contacts/"
WAIT_S = 30.0


# === HELPERS ===
def new_body(**fields: Any) -> dict[str, Any]:
    """A contact with an email no other test uses (outbox rows are kept between tests)."""
    body = {"name": "Eva Horváthová", "email": f"eva-{uuid.uuid4().hex[:12]}@example.com"}
    body.update(fields)
    return body


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post(API, json=new_body(**fields))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def events_of(db: Database, email: str) -> list[str]:
    """The event types written to the outbox for the contact with this email, in order."""
    async with db.transaction() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
    return [row.payload["event_type"] for row in rows if row.payload["contact_email"] == email]


async def contacts_with_email(db: Database, email: str) -> int:
    async with db.transaction() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM contacts WHERE email = :email"), {"email": email}
        )
    return int(count or 0)


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """
    A second contacts app with REQUIRE_IF_MATCH=true and an expired-key cleanup every 50 ms
    (the deployment settings these tests are about).
    """
    strict = settings.model_copy(
        update={"require_if_match": True, "idempotency_cleanup_interval_seconds": 0.05}
    )
    application = create_app(strict)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=TOKENS.bearer()
        ) as client:
            yield client


# === ETAG / IF-NONE-MATCH ===
async def test_every_answer_with_a_contact_carries_its_version_as_strong_etag(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(API, json=new_body())
    assert created.headers["ETag"] == '"1"'
    contact_id = created.json()["id"]
    assert (await client.get(f"{API}{contact_id}")).headers["ETag"] == '"1"'
    updated = await client.put(f"{API}{contact_id}", json={"phone": "1"})
    assert updated.headers["ETag"] == '"2"'
    assert updated.json()["version"] == 2


async def test_if_none_match_answers_304_while_unchanged(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    url = f"{API}{contact['id']}"
    for condition in ('"1"', '"7", "1"', 'W/"1"', "*"):
        unchanged = await client.get(url, headers={"If-None-Match": condition})
        assert unchanged.status_code == 304, condition
        assert unchanged.content == b""
        assert unchanged.headers["ETag"] == '"1"'
    await client.put(url, json={"phone": "2"})
    changed = await client.get(url, headers={"If-None-Match": '"1"'})
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    assert (await client.get(url, headers={"If-None-Match": "1"})).status_code == 400


# === IF-MATCH ===
async def test_put_with_the_current_etag_applies_the_change(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    url = f"{API}{contact['id']}"
    first = await client.put(url, json={"phone": "1"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["ETag"] == '"2"'
    second = await client.put(url, json={"phone": "2"}, headers={"If-Match": '"5", "2"'})
    assert second.status_code == 200
    assert (await client.put(url, json={"phone": "3"}, headers={"If-Match": "*"})).json()[
        "version"
    ] == 4


async def test_stale_if_match_on_put_is_412_and_changes_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    contact = await create(client)
    url = f"{API}{contact['id']}"
    await client.put(url, json={"phone": "1"})  # version 2: the client's copy is stale
    for stale in ('"1"', 'W/"2"'):  # a weak tag never matches If-Match (strong comparison)
        refused = await client.put(url, json={"name": "Lost Update"}, headers={"If-Match": stale})
        assert refused.status_code == 412, stale
        assert refused.json()["current_version"] == 2
        assert "version is 2" in refused.json()["detail"]
        assert refused.headers["ETag"] == '"2"'
    current = (await client.get(url)).json()
    assert current["name"] == contact["name"]
    assert current["version"] == 2
    assert await events_of(db, contact["email"]) == ["ContactCreated", "ContactUpdated"]


async def test_stale_if_match_on_delete_is_412_and_deletes_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    contact = await create(client)
    url = f"{API}{contact['id']}"
    await client.put(url, json={"phone": "1"})
    refused = await client.delete(url, headers={"If-Match": '"1"'})
    assert refused.status_code == 412
    assert refused.json()["current_version"] == 2
    assert (await client.get(url)).status_code == 200
    assert await events_of(db, contact["email"]) == ["ContactCreated", "ContactUpdated"]
    assert (await client.delete(url, headers={"If-Match": '"2"'})).status_code == 204
    assert (await client.get(url)).status_code == 404


async def test_if_match_on_an_unknown_contact_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}777777", json={"phone": "1"}, headers={"If-Match": '"1"'})
    assert response.status_code == 404


async def test_malformed_if_match_is_400(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    for bad in ("1", '"1', "W/1", '"1",,'):
        response = await client.put(
            f"{API}{contact['id']}", json={"phone": "1"}, headers={"If-Match": bad}
        )
        assert response.status_code == 400, bad
    assert (await client.get(f"{API}{contact['id']}")).json()["version"] == 1


async def test_concurrent_puts_with_one_if_match_give_one_200_and_412s(
    client: httpx.AsyncClient, db: Database
) -> None:
    contact = await create(client)
    url = f"{API}{contact['id']}"
    racers = 4
    # Hold the contact's row lock until every request has reached it, so that they all run at
    # once: a check made before taking the lock would let each of them pass.
    async with db.transaction() as blocker:
        await blocker.execute(
            text("SELECT id FROM contacts WHERE id = :id FOR UPDATE"), {"id": contact["id"]}
        )
        puts = [
            asyncio.create_task(
                client.put(url, json={"name": f"Writer {n}"}, headers={"If-Match": '"1"'})
            )
            for n in range(racers)
        ]
        await wait_for_lock_waiters(db, racers)
    answers = await asyncio.gather(*puts)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [412] * (racers - 1)
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    assert (await client.get(url)).json() == winner
    assert winner["version"] == 2
    assert await events_of(db, contact["email"]) == ["ContactCreated", "ContactUpdated"]


async def test_required_if_match_refuses_changes_without_it_with_428(
    strict_client: httpx.AsyncClient,
) -> None:
    contact = await create(strict_client)  # creating needs no If-Match
    url = f"{API}{contact['id']}"
    refused = await strict_client.put(url, json={"phone": "1"})
    assert refused.status_code == 428
    assert "If-Match" in refused.json()["detail"]
    assert (await strict_client.delete(url)).status_code == 428
    assert (await strict_client.get(url)).json()["version"] == 1
    applied = await strict_client.put(url, json={"phone": "1"}, headers={"If-Match": '"1"'})
    assert applied.status_code == 200
    assert (await strict_client.delete(url, headers={"If-Match": '"2"'})).status_code == 204


async def test_if_match_is_optional_by_default(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    assert (await client.put(f"{API}{contact['id']}", json={"phone": "1"})).status_code == 200


# === IDEMPOTENCY KEYS ===
async def test_a_retried_create_with_a_key_replays_the_first_answer(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = new_body()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(API, json=body, headers=key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    retry = await client.post(API, json=body, headers=key)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert retry.headers["content-type"] == "application/json"
    assert await contacts_with_email(db, body["email"]) == 1
    assert await events_of(db, body["email"]) == ["ContactCreated"]
    # Without the key the same body is a new request (here a duplicate email).
    assert (await client.post(API, json=body)).status_code == 400


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = {"Idempotency-Key": "order-form-42"}
    first = new_body()
    assert (await client.post(API, json=first, headers=key)).status_code == 201
    other = new_body()
    refused = await client.post(API, json=other, headers=key)
    assert refused.status_code == 422
    assert "different request body" in refused.json()["detail"]
    assert await contacts_with_email(db, other["email"]) == 0


async def test_a_quoted_key_is_the_same_key(client: httpx.AsyncClient) -> None:
    body = new_body()
    first = await client.post(API, json=body, headers={"Idempotency-Key": "abc-1"})
    again = await client.post(API, json=body, headers={"Idempotency-Key": '"abc-1"'})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


async def test_an_invalid_key_is_400(client: httpx.AsyncClient, db: Database) -> None:
    body = new_body()
    for bad in ("", '""', "x" * 256):
        response = await client.post(API, json=body, headers={"Idempotency-Key": bad})
        assert response.status_code == 400, bad
    assert await contacts_with_email(db, body["email"]) == 0


async def test_a_failed_request_is_not_stored(client: httpx.AsyncClient) -> None:
    taken = await create(client)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = new_body(email=taken["email"])
    assert (await client.post(API, json=body, headers=key)).status_code == 400
    await client.delete(f"{API}{taken['id']}")
    # Nothing was stored for the refused request: the retry runs again and now succeeds.
    retry = await client.post(API, json=body, headers=key)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


async def test_a_duplicate_while_the_first_runs_is_409_then_replayed(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = new_body()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    # Block every INSERT into contacts: the first request holds its key while it waits.
    async with db.transaction() as blocker:
        await blocker.execute(text("LOCK TABLE contacts IN SHARE MODE"))
        first = asyncio.create_task(client.post(API, json=body, headers=key))
        await wait_for_lock_waiters(db, 1)
        duplicate = await asyncio.wait_for(client.post(API, json=body, headers=key), WAIT_S)
        assert duplicate.status_code == 409
        assert "still being processed" in duplicate.json()["detail"]
    created = await first
    assert created.status_code == 201
    replay = await client.post(API, json=body, headers=key)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == created.json()
    assert await contacts_with_email(db, body["email"]) == 1


async def test_concurrent_duplicates_with_one_key_create_one_contact(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = new_body()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers = await asyncio.gather(*(client.post(API, json=body, headers=key) for _ in range(8)))
    assert {answer.status_code for answer in answers} <= {201, 409}
    created = [a for a in answers if a.status_code == 201]
    assert len([a for a in created if "Idempotent-Replayed" not in a.headers]) == 1
    assert len({a.content for a in created}) == 1
    assert await contacts_with_email(db, body["email"]) == 1
    assert await events_of(db, body["email"]) == ["ContactCreated"]


async def test_keys_are_scoped_to_the_route(client: httpx.AsyncClient, db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO idempotency_keys (caller, route, key, fingerprint, status_code, "
                "headers, body, expires_at) VALUES ('test-user', 'POST /api/v1/other/', 'k-1', "
                "'x', 201, '{}', '\\x7b7d', now() + interval '1 hour')"
            )
        )
    body = new_body()
    answer = await client.post(API, json=body, headers={"Idempotency-Key": "k-1"})
    assert answer.status_code == 201
    assert "Idempotent-Replayed" not in answer.headers


async def test_an_expired_key_runs_again_and_the_service_deletes_it(
    strict_client: httpx.AsyncClient, db: Database
) -> None:
    body = new_body()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await strict_client.post(API, json=body, headers=key)
    assert first.status_code == 201
    async with db.transaction() as session:
        await session.execute(text("UPDATE idempotency_keys SET expires_at = now()"))
    # Expired: not replayed (the request runs again: the email is now taken).
    assert (await strict_client.post(API, json=body, headers=key)).status_code == 400

    async def key_deleted() -> bool:
        async with db.transaction() as session:
            left = await session.scalar(select(func.count()).select_from(IdempotencyKey))
        return left == 0

    await eventually(key_deleted, "the service's cleanup deleted the expired key")


# === CORS / OPENAPI ===
async def test_cors_lets_the_web_ui_send_the_headers_and_read_etag(
    client: httpx.AsyncClient,
) -> None:
    origin = {"Origin": "http://localhost:4201"}
    preflight = await client.options(
        f"{API}1",
        headers={
            **origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "if-match, if-none-match, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"if-match", "if-none-match", "idempotency-key"} <= {
        name.strip() for name in allowed.split(",")
    }
    answer = await client.post(API, json=new_body(), headers=origin)
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert {"etag", "idempotent-replayed"} <= {name.strip() for name in exposed.split(",")}


async def test_openapi_declares_the_headers_and_answers(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def headers_of(operation: dict[str, Any]) -> set[str]:
        return {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}

    one = paths["/api/v1/contacts/{contact_id}"]
    assert "if-none-match" in headers_of(one["get"])
    assert {"304", "200"} <= set(one["get"]["responses"])
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    for method in ("put", "delete"):
        assert "if-match" in headers_of(one[method])
        assert {"412", "428"} <= set(one[method]["responses"])
    create_op = paths["/api/v1/contacts/"]["post"]
    assert "idempotency-key" in headers_of(create_op)
    assert {"201", "409", "422"} <= set(create_op["responses"])


async def test_keys_are_scoped_to_the_caller(app: Any, db: Database) -> None:
    body = new_body()
    key = {"Idempotency-Key": "same-key-two-callers"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = await http.post(API, json=body, headers={**key, **TOKENS.bearer(subject="ann")})
        other = await http.post(API, json=body, headers={**key, **TOKENS.bearer(subject="bob")})
    assert first.status_code == 201
    assert other.status_code == 400  # not ann's answer: bob's request ran (email taken)
    assert await contacts_with_email(db, body["email"]) == 1
