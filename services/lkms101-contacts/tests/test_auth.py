"""
================================================================
FILE: test_auth.py
PATH: /services/lkms101-contacts/tests/test_auth.py
DESCRIPTION: Authentication and scopes against the real contacts app: every way a token is bad
VERSION: v1.1.0
UPDATED: 2026-12-02 06:35:00
================================================================
"""

# === IMPORTS ===
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select

from app.config import Settings
from app.database import Database
from app.main import create_app
from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE, ORDERS_READ
from lkern_common.outbox import OutboxEvent
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import PUBLIC_PATHS, app_routes, declared_scopes, is_public
from lkern_devstack.dev_keys import SigningKey
from lkern_devstack.testing import JwksServer, TestTokens

# === CONSTANTS ===
API = "/api/v1/contacts/"
BODY = {"name": "Auth Test", "email": "auth@example.com"}


# === HELPERS ===
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand: HMAC-SHA256 over it with ``secret``, or no signature at all."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b""
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def valid_claims(tokens: TestTokens, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": tokens.issuer,
        "aud": tokens.audience,
        "sub": "mallory",
        "exp": now + 600,
        "iat": now,
        "scope": "contacts:read contacts:write",
    }
    return {**claims, **overrides}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Invalid token"}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# === NO TOKEN ===
@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", API), ("GET", f"{API}1"), ("POST", API), ("PUT", f"{API}1"), ("DELETE", f"{API}1")],
)
async def test_every_api_route_without_a_token_is_401(
    anonymous_client: httpx.AsyncClient, method: str, url: str
) -> None:
    response = await anonymous_client.request(method, url, json=BODY)
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_another_scheme_is_not_a_token(anonymous_client: httpx.AsyncClient) -> None:
    response = await anonymous_client.get(API, headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_public_routes_need_no_token(anonymous_client: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/", "/docs", "/redoc", "/openapi.json"):
        assert (await anonymous_client.get(path)).status_code == 200, path
    asset = await anonymous_client.get("/static-offline-docs/swagger-ui.css")
    assert asset.status_code == 200


# === BAD TOKENS ===
async def test_expired_token_is_401(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    # Expired two minutes ago: beyond the 30 s of clock skew allowed.
    token = tokens.mint(ttl_seconds=-120)
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))


async def test_token_not_yet_valid_is_401(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    token = tokens.mint(nbf=int(time.time()) + 300)
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))


async def test_small_clock_skew_is_allowed(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    token = tokens.mint(nbf=int(time.time()) + 5)
    assert (await anonymous_client.get(API, headers=bearer(token))).status_code == 200


async def test_wrong_issuer_is_401(anonymous_client: httpx.AsyncClient, tokens: TestTokens) -> None:
    token = tokens.mint(iss="https://evil.example/")
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))


async def test_wrong_audience_is_401_and_a_list_containing_ours_is_fine(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    wrong = tokens.mint(aud="another-api")
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(wrong)))
    listed = tokens.mint(aud=["another-api", tokens.audience])
    assert (await anonymous_client.get(API, headers=bearer(listed))).status_code == 200


async def test_alg_none_is_401(anonymous_client: httpx.AsyncClient, tokens: TestTokens) -> None:
    token = unsigned_token({"alg": "none", "kid": tokens.key.kid}, valid_claims(tokens), None)
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))


async def test_hs256_signed_with_the_public_key_is_401(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    public = tokens.key.private_key.public_key()
    secrets = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(tokens.key.public_jwk()).encode(),
    ]
    for secret in secrets:
        header = {"alg": "HS256", "typ": "JWT", "kid": tokens.key.kid}
        token = unsigned_token(header, valid_claims(tokens), secret)
        assert_invalid_token(await anonymous_client.post(API, json=BODY, headers=bearer(token)))


async def test_unknown_kid_is_401(anonymous_client: httpx.AsyncClient, tokens: TestTokens) -> None:
    stranger = SigningKey.generate()
    token = tokens.mint(key=stranger)
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))
    # A known kid on a token signed by another key: the signature fails.
    forged = tokens.mint(key=stranger, kid=tokens.key.kid)
    assert_invalid_token(await anonymous_client.get(API, headers=bearer(forged)))


async def test_garbage_and_tampered_tokens_are_401(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    header, _payload, signature = tokens.mint(scopes=[CONTACTS_READ]).split(".")
    widened = b64(json.dumps(valid_claims(tokens, sub="test-user")).encode())
    for token in ("not-a-jwt", "a.b.c", f"{header}.{widened}.{signature}", "x" * 20000):
        assert_invalid_token(await anonymous_client.get(API, headers=bearer(token)))


# === SCOPES ===
async def test_read_only_token_cannot_write(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    read_only = tokens.bearer(CONTACTS_READ)
    assert (await anonymous_client.get(API, headers=read_only)).status_code == 200
    for method, url in (("POST", API), ("PUT", f"{API}1"), ("DELETE", f"{API}1")):
        response = await anonymous_client.request(method, url, json=BODY, headers=read_only)
        assert response.status_code == 403, (method, response.text)
        assert response.json() == {"detail": "This operation needs the scope contacts:write"}
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", scope="contacts:write"'
        )


async def test_write_only_or_other_service_scopes_cannot_read(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    for scopes in ([CONTACTS_WRITE], [ORDERS_READ], []):
        response = await anonymous_client.get(API, headers=tokens.bearer(*scopes or ["none"]))
        assert response.status_code == 403
        assert 'scope="contacts:read"' in response.headers["www-authenticate"]


# === DECLARED REQUIREMENTS ===
def test_every_route_is_public_or_declares_its_scope(app: FastAPI) -> None:
    declared = {}
    for name, original, served in app_routes(app):
        if is_public(original):
            continue
        scopes = declared_scopes(served)
        assert scopes, f"{name} is neither public nor declares a scope"
        declared[name] = scopes
    assert declared == {
        "GET /api/v1/contacts/": ("contacts:read",),
        "GET /api/v1/contacts/{contact_id}": ("contacts:read",),
        "POST /api/v1/contacts/": ("contacts:write",),
        "PUT /api/v1/contacts/{contact_id}": ("contacts:write",),
        "DELETE /api/v1/contacts/{contact_id}": ("contacts:write",),
        "GET /config/log-level": ("lkern:admin",),
        "PUT /config/log-level": ("lkern:admin",),
    }
    assert {getattr(route, "path", None) for _, route, _ in app_routes(app)} >= PUBLIC_PATHS - {
        "/docs/oauth2-redirect"
    }


def test_an_app_with_an_undeclared_route_refuses_to_start(settings: Settings) -> None:
    from app.routers import contacts
    from lkern_common.web.app_factory import create_web_app

    forgotten = APIRouter(route_class=ApiRoute)  # only its scope is forgotten

    @forgotten.get("/contacts/export")
    async def export() -> list[str]:
        return []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield

    with pytest.raises(RuntimeError, match=r"GET /api/v1/contacts/export"):
        create_web_app(
            settings,
            title="t",
            description="d",
            lifespan=lifespan,
            routers=[contacts.router, forgotten],
        )


async def test_openapi_offers_the_bearer_scheme_to_swagger_ui(
    anonymous_client: httpx.AsyncClient,
) -> None:
    openapi = (await anonymous_client.get("/openapi.json")).json()
    schemes = openapi["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": schemes["HTTPBearer"]["description"],
        }
    }
    operation = openapi["paths"]["/api/v1/contacts/"]["post"]
    assert operation["security"] == [{"HTTPBearer": ["contacts:write"]}]
    assert {"401", "403"} <= set(operation["responses"])
    assert "security" not in openapi["paths"]["/health"]["get"]


# === KEY ROTATION ===
@pytest.fixture
def jwks_server(tokens: TestTokens) -> Iterator[JwksServer]:
    with JwksServer([tokens.key]) as server:
        yield server


@pytest.fixture
async def url_app_client(
    settings: Settings, jwks_server: JwksServer
) -> AsyncIterator[httpx.AsyncClient]:
    """A second contacts app that reads its keys from the JWKS URL (no refetch throttle)."""
    url_settings = settings.model_copy(
        update={"auth_jwks_url": jwks_server.url, "auth_jwks_min_refresh_seconds": 0.0}
    )
    application = create_app(url_settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://url") as client:
            yield client


async def test_a_key_rotated_into_the_jwks_url_works_without_restart(
    url_app_client: httpx.AsyncClient, jwks_server: JwksServer, tokens: TestTokens
) -> None:
    old = tokens.key
    assert (await url_app_client.get(API, headers=tokens.bearer(CONTACTS_READ))).status_code == 200

    new = SigningKey.generate()
    new_token = tokens.mint([CONTACTS_READ], key=new)
    assert_invalid_token(await url_app_client.get(API, headers=bearer(new_token)))

    jwks_server.publish([old, new])  # the issuer rotates its key in
    assert (await url_app_client.get(API, headers=bearer(new_token))).status_code == 200

    ready = (await url_app_client.get("/ready")).json()
    assert ready["checks"]["auth"] == {"ok": True, "keys": 2}


async def test_unknown_kids_do_not_hammer_the_issuer(
    settings: Settings, jwks_server: JwksServer, tokens: TestTokens
) -> None:
    throttled = settings.model_copy(
        update={"auth_jwks_url": jwks_server.url, "auth_jwks_min_refresh_seconds": 3600.0}
    )
    application = create_app(throttled)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://url") as client:
            fetched_at_start = jwks_server.requests
            stranger = SigningKey.generate()
            for attempt in range(20):
                token = tokens.mint(key=stranger, kid=f"unknown-{attempt}")
                assert_invalid_token(await client.get(API, headers=bearer(token)))
            assert jwks_server.requests == fetched_at_start


# === WHO DID IT ===
async def test_changes_record_who_made_them_in_rows_responses_events_and_logs(
    anonymous_client: httpx.AsyncClient,
    tokens: TestTokens,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with db.transaction() as session:
        before = await session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0)))
    alice, bob = tokens.bearer(subject="alice"), tokens.bearer(subject="bob")
    created = await anonymous_client.post(API, json=BODY, headers=alice)
    assert created.status_code == 201
    contact = created.json()
    assert (contact["created_by"], contact["updated_by"]) == ("alice", None)

    changed = await anonymous_client.put(
        f"{API}{contact['id']}", json={"name": "Renamed"}, headers=bob
    )
    assert (changed.json()["created_by"], changed.json()["updated_by"]) == ("alice", "bob")
    shown = (await anonymous_client.get(f"{API}{contact['id']}", headers=alice)).json()
    assert (shown["created_by"], shown["updated_by"]) == ("alice", "bob")

    carol = tokens.bearer(subject="carol")
    deleted = await anonymous_client.delete(f"{API}{contact['id']}", headers=carol)
    assert deleted.status_code == 204
    async with db.transaction() as session:
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id > before, OutboxEvent.key == str(contact["id"]))
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert [(e.payload["event_type"], e.payload["actor"]) for e in events] == [
        ("ContactCreated", "alice"),
        ("ContactUpdated", "bob"),
        ("ContactDeleted", "carol"),
    ]
    assert events[1].payload["contact"]["updated_by"] == "bob"
    # Log lines of a request carry the subject next to the request id.
    created_lines = [r for r in caplog.records if "Created contact" in r.getMessage()]
    assert [getattr(r, "subject", None) for r in created_lines] == ["alice"]
    access = [r for r in caplog.records if r.name == "lkern.access" and "DELETE" in r.getMessage()]
    assert [getattr(r, "subject", None) for r in access] == ["carol"]
