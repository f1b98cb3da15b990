"""
================================================================
FILE: test_api.py
PATH: /services/lkms101-contacts/tests/test_api.py
DESCRIPTION: REST API tests against a real PostgreSQL
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
import logging
from typing import Any

import httpx
import pytest

from tests.conftest import TOKENS

# === CONSTANTS ===
API = "/api/v1/contacts/"


# === HELPERS ===
async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Jana Nováková", "email": "jana@example.com", "phone": "+421 900 000 000"}
    body.update(fields)
    response = await client.post(API, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


# === CREATE / GET ===
async def test_create_returns_201_with_the_contact(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    assert contact["id"] > 0
    assert contact["name"] == "Jana Nováková"
    assert contact["email"] == "jana@example.com"
    assert contact["is_active"] is True
    assert contact["version"] == 1
    assert contact["created_at"]
    assert contact["updated_at"] is None


async def test_get_returns_the_contact_and_404_when_unknown(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    response = await client.get(f"{API}{contact['id']}")
    assert response.status_code == 200
    assert response.json() == contact

    missing = await client.get(f"{API}999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Contact with id 999999 not found"}


# === UPDATE ===
async def test_put_updates_only_the_fields_sent_and_bumps_version(
    client: httpx.AsyncClient,
) -> None:
    contact = await create(client)
    response = await client.put(f"{API}{contact['id']}", json={"phone": "123"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["phone"] == "123"
    assert updated["name"] == contact["name"]
    assert updated["email"] == contact["email"]
    assert updated["version"] == 2
    assert updated["updated_at"] is not None

    again = await client.put(f"{API}{contact['id']}", json={"is_active": False, "name": "Jana N."})
    assert again.json()["version"] == 3
    assert again.json()["is_active"] is False
    assert (await client.get(f"{API}{contact['id']}")).json() == again.json()


async def test_put_unknown_contact_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}424242", json={"name": "x"})
    assert response.status_code == 404
    assert response.json()["detail"] == "Contact with id 424242 not found"


async def test_put_null_for_a_required_field_is_422(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    for field in ("name", "email", "is_active"):
        response = await client.put(f"{API}{contact['id']}", json={field: None})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", field]
    cleared = await client.put(f"{API}{contact['id']}", json={"phone": None})
    assert cleared.status_code == 200
    assert cleared.json()["phone"] is None


# === DELETE ===
async def test_delete_returns_204_then_404(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    response = await client.delete(f"{API}{contact['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{API}{contact['id']}")).status_code == 404
    assert (await client.delete(f"{API}{contact['id']}")).status_code == 404


# === DUPLICATE EMAIL ===
async def test_duplicate_email_is_400_case_insensitive(client: httpx.AsyncClient) -> None:
    await create(client, email="dup@example.com")
    response = await client.post(API, json={"name": "Other", "email": "DUP@Example.com"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Contact with email DUP@example.com already exists"}


async def test_update_to_another_contacts_email_is_400(client: httpx.AsyncClient) -> None:
    await create(client, email="first@example.com")
    second = await create(client, email="second@example.com")
    response = await client.put(f"{API}{second['id']}", json={"email": "First@example.com"})
    assert response.status_code == 400
    assert "already exists" in response.json()["detail"]
    assert (await client.get(f"{API}{second['id']}")).json()["email"] == "second@example.com"


async def test_100_racing_creates_with_one_email_give_one_201(client: httpx.AsyncClient) -> None:
    body = {"name": "Racer", "email": "race@example.com"}
    responses = await asyncio.gather(*(client.post(API, json=body) for _ in range(100)))
    codes = sorted(response.status_code for response in responses)
    assert codes.count(201) == 1
    assert codes.count(400) == 99
    listed = await client.get(API, params={"q": "race@"})
    assert listed.headers["X-Total-Count"] == "1"


# === LIST ===
async def test_list_pagination_filters_and_total(client: httpx.AsyncClient) -> None:
    for index in range(7):
        await create(client, name=f"Person {index}", email=f"p{index}@example.com")
    contacts = (await client.get(API)).json()
    await client.put(f"{API}{contacts[0]['id']}", json={"is_active": False})

    page = await client.get(API, params={"skip": 2, "limit": 3})
    assert page.status_code == 200
    assert [c["name"] for c in page.json()] == ["Person 2", "Person 3", "Person 4"]
    assert page.headers["X-Total-Count"] == "7"

    active = await client.get(API, params={"is_active": "true"})
    assert len(active.json()) == 6
    assert active.headers["X-Total-Count"] == "6"

    inactive = await client.get(API, params={"is_active": "false", "limit": 1})
    assert [c["name"] for c in inactive.json()] == ["Person 0"]
    assert inactive.headers["X-Total-Count"] == "1"

    beyond = await client.get(API, params={"skip": 100})
    assert beyond.json() == []
    assert beyond.headers["X-Total-Count"] == "7"


async def test_search_q_matches_name_or_email_and_combines_with_filters(
    client: httpx.AsyncClient,
) -> None:
    await create(client, name="Peter Malý", email="peter@firma.sk")
    await create(client, name="Eva Veľká", email="eva@PETERSHOP.com")
    other = await create(client, name="Ivan", email="ivan@example.com")
    await create(client, name="50% Off Ltd", email="deals@example.com")

    found = await client.get(API, params={"q": "PeTeR"})
    assert sorted(c["name"] for c in found.json()) == ["Eva Veľká", "Peter Malý"]
    assert found.headers["X-Total-Count"] == "2"

    await client.put(f"{API}{other['id']}", json={"is_active": False})
    assert (await client.get(API, params={"q": "ivan", "is_active": "true"})).json() == []
    # LIKE wildcards in q are searched literally
    assert [c["name"] for c in (await client.get(API, params={"q": "0%"})).json()] == [
        "50% Off Ltd"
    ]
    assert (await client.get(API, params={"q": "_"})).json() == []


# === INVALID INPUT ===
@pytest.mark.parametrize(
    "body",
    [
        {"name": "A", "email": "not-an-email"},
        {"name": "", "email": "a@example.com"},
        {"name": "   ", "email": "a@example.com"},
        {"name": "x" * 256, "email": "a@example.com"},
        {"name": "A", "email": "a@example.com", "phone": "1" * 51},
        {"email": "a@example.com"},
        {"name": "A"},
        {"name": 5, "email": "a@example.com"},
    ],
)
async def test_invalid_contact_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(API, json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", API, {"params": {"limit": 0}}),
        ("GET", API, {"params": {"limit": 1001}}),
        ("GET", API, {"params": {"skip": -1}}),
        ("GET", API, {"params": {"is_active": "maybe"}}),
        ("GET", f"{API}abc", {}),
        ("PUT", f"{API}abc", {"json": {}}),
        ("DELETE", f"{API}1.5", {}),
        ("POST", API, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("PUT", f"{API}1", {"content": b"[1,", "headers": {"content-type": "application/json"}}),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, url, **kwargs)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


# === HOSTILE INPUT (docs/errors.md) ===
@pytest.mark.parametrize("text", ["Ja\x00na", "\x00"])
@pytest.mark.parametrize("field", ["name", "phone"])
async def test_text_postgresql_cannot_store_is_422_naming_the_field(
    client: httpx.AsyncClient, field: str, text: str
) -> None:
    body = {"name": "Jana", "email": "jana@example.com", field: text}
    created = await client.post(API, json=body)
    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["loc"] == ["body", field]
    contact = await create(client)
    updated = await client.put(f"{API}{contact['id']}", json={field: text})
    assert updated.status_code == 422, updated.text
    assert updated.json()["detail"][0]["loc"] == ["body", field]
    searched = await client.get(API, params={"q": text})
    assert searched.status_code == 422
    assert searched.json()["detail"][0]["loc"] == ["query", "q"]


@pytest.mark.parametrize("field", ["is_activ", "id", "version", "created_at"])
async def test_unknown_and_read_only_fields_are_422(client: httpx.AsyncClient, field: str) -> None:
    contact = await create(client)
    for method, url in (("POST", API), ("PUT", f"{API}{contact['id']}")):
        body = {"name": "A", "email": "other@example.com", field: False}
        response = await client.request(method, url, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await client.get(f"{API}{contact['id']}")).json() == contact


async def test_is_active_is_a_strict_boolean(client: httpx.AsyncClient) -> None:
    contact = await create(client)
    for value in (0, "false", "no"):
        response = await client.put(f"{API}{contact['id']}", json={"is_active": value})
        assert response.status_code == 422, response.text


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(API, json={"name": "x" * 2_000_000, "email": "big@example.com"})
    assert response.status_code == 413
    assert "X-Request-ID" in response.headers


async def test_422_does_not_echo_a_long_value(client: httpx.AsyncClient) -> None:
    response = await client.post(API, json={"name": "n" * 500_000, "email": "a@example.com"})
    assert response.status_code == 422
    assert len(response.content) < 1000


# === HEALTH / READY / ROOT ===
async def test_health_ready_and_root(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {
        "status": "healthy",
        "service": "lkms101-contacts",
        "version": "1.0.0",
    }
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["ok"] is True
    assert (await client.get("/")).json() == {
        "service": "lkms101-contacts",
        "version": "1.0.0",
        "docs": "/docs",
    }


# === CORS / REQUEST ID / DOCS ===
async def test_cors_allows_the_web_ui_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await client.options(API, headers={"Origin": "http://localhost:4201", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:4201"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    denied = await client.options(API, headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


async def test_request_id_is_returned_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    given = await client.post(
        API,
        json={"name": "Log", "email": "log@example.com"},
        headers={"X-Request-ID": "req-abc-123"},
    )
    assert given.headers["x-request-id"] == "req-abc-123"
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "req-abc-123"]
    assert any("Created contact" in r.getMessage() for r in lines)

    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["x-request-id"] != "bad id\nwith newline"


async def test_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assert "cdn.jsdelivr.net" not in html
        assert "/static-offline-docs/" in html
    asset = await client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.content) > 100_000
    openapi = (await client.get("/openapi.json")).json()
    assert "/api/v1/contacts/{contact_id}" in openapi["paths"]


async def test_ready_is_503_when_the_database_does_not_answer(settings: Any) -> None:
    from asgi_lifespan import LifespanManager

    from app.main import create_app

    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    unreachable = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    app = create_app(unreachable)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=TOKENS.bearer()
        ) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"]["ok"] is False
            assert (await client.get("/health")).status_code == 200
            down = await client.get(API)
            assert down.status_code == 503
            assert down.json() == {
                "detail": "Service temporarily unavailable: the database cannot be reached"
            }


async def test_ids_and_offsets_beyond_integer_range_are_422(client: httpx.AsyncClient) -> None:
    for url in (f"{API}99999999999", f"{API}0", f"{API}?skip=99999999999"):
        response = await client.get(url)
        assert response.status_code == 422, (url, response.text)
