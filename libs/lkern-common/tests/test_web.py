"""
================================================================
FILE: test_web.py
PATH: /libs/lkern-common/tests/test_web.py
DESCRIPTION: The shared REST pieces against hostile input: text, unknown fields, strict types,
             body size, bad JSON, 500s, 405/HEAD, the OpenAPI additions
VERSION: v1.2.0
UPDATED: 2026-12-02 09:55:00
================================================================

A small app built by ``create_web_app`` (the services' factory) with a test router; no
database is needed for what these tests check.
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, Query, Response

from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE
from lkern_common.logging_setup import RequestIdFilter
from lkern_common.settings import WEB_UI_ORIGIN, ServiceSettings
from lkern_common.web.app_factory import create_web_app
from lkern_common.web.inputs import Email, Flag, Id, InputModel, Text, omittable
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires
from lkern_devstack.testing import TestTokens

# === CONSTANTS ===
LIMIT = 4096
ran: list[str] = []
TOKENS = TestTokens.temporary()
READ = [requires(CONTACTS_READ)]
WRITE = [requires(CONTACTS_WRITE)]


# === TEST APP ===
class ThingIn(InputModel):
    name: str
    tags: list[str] = []
    owner_id: Id | None = None
    email: Email | None = None


class ThingUpdate(InputModel):
    name: str = omittable(max_length=20)
    active: Flag = omittable()


router = APIRouter(prefix="/things", tags=["things"], route_class=ApiRoute)


@router.get("/", dependencies=READ)
async def list_things(q: Text | None = Query(None)) -> list[str]:
    return [q or ""]


@router.post("/", status_code=201, dependencies=WRITE)
async def create_thing(thing: ThingIn) -> dict[str, Any]:
    ran.append("create")
    return thing.model_dump()


@router.get("/{thing_id}", dependencies=READ)
async def get_thing(thing_id: int, response: Response) -> dict[str, int]:
    return {"id": thing_id}


@router.put("/{thing_id}", dependencies=WRITE)
async def update_thing(
    thing_id: int, thing: ThingUpdate, if_match: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    return thing.model_dump(exclude_unset=True)


@router.delete("/{thing_id}", status_code=204, dependencies=WRITE)
async def delete_thing(thing_id: int) -> None:
    raise RuntimeError("secret internals")


@asynccontextmanager
async def no_resources(app: FastAPI) -> AsyncIterator[None]:
    yield


def make_app() -> FastAPI:
    settings = ServiceSettings(http_max_body_bytes=LIMIT, log_requests=False, **TOKENS.settings())
    return create_web_app(
        settings, title="t", description="d", lifespan=no_resources, routers=[router]
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    ran.clear()
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=TOKENS.bearer()
    ) as http_client:
        yield http_client


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    found: list[dict[str, Any]] = response.json()["detail"]
    return found


# === TEXT POSTGRESQL CANNOT STORE ===
@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"name": "a\x00b"}, ["body", "name"]),
        ({"name": "ok", "tags": ["fine", "nul\x00"]}, ["body", "tags"]),
    ],
)
async def test_nul_in_any_text_field_is_422_naming_it(
    client: httpx.AsyncClient, body: dict[str, Any], location: list[str]
) -> None:
    [error] = errors(await client.post("/api/v1/things/", json=body))
    assert error["loc"] == location
    assert error["type"] == "text_not_storable"


async def test_nul_in_a_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    [error] = errors(await client.get("/api/v1/things/", params={"q": "x\x00"}))
    assert error["loc"] == ["query", "q"]


async def test_escaped_lone_surrogate_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/things/",
        content=b'{"name": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert errors(response)[0]["type"] == "json_invalid"


# === UNKNOWN FIELDS, STRICT TYPES ===
@pytest.mark.parametrize("field", ["nmae", "id", "version", "created_at"])
async def test_unknown_or_read_only_field_is_422(client: httpx.AsyncClient, field: str) -> None:
    [error] = errors(await client.post("/api/v1/things/", json={"name": "x", field: 1}))
    assert error["loc"] == ["body", field]
    assert error["type"] == "extra_forbidden"


@pytest.mark.parametrize("value", [True, "1", 1.0, 0, 2**31])
async def test_ids_are_strict_integers(client: httpx.AsyncClient, value: Any) -> None:
    [error] = errors(await client.post("/api/v1/things/", json={"name": "x", "owner_id": value}))
    assert error["loc"] == ["body", "owner_id"]


@pytest.mark.parametrize("value", [1, "true", None])
async def test_flags_are_strict_booleans(client: httpx.AsyncClient, value: Any) -> None:
    [error] = errors(await client.put("/api/v1/things/1", json={"active": value}))
    assert error["loc"] == ["body", "active"]


async def test_omittable_field_left_out_is_not_sent(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/things/1", json={"active": False})
    assert response.json() == {"active": False}


async def test_email_special_use_domain_is_refused_and_documented(
    client: httpx.AsyncClient,
) -> None:
    assert (
        await client.post("/api/v1/things/", json={"name": "x", "email": "a@b.test"})
    ).status_code == 422
    ok = await client.post("/api/v1/things/", json={"name": "x", "email": "a@B.Example.org"})
    assert ok.json()["email"] == "a@b.example.org"
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["ThingIn"]
    email = schema["properties"]["email"]["anyOf"][0]
    assert email["format"] == "email"
    assert "[tT][eE][sS][tT]" in email["pattern"]


# === BODY SIZE ===
async def test_body_over_the_limit_is_413_before_the_route_runs(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/things/", json={"name": "x" * LIMIT}, headers={"X-Request-ID": "big-1"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": f"Request body is larger than {LIMIT} bytes"}
    assert response.headers["X-Request-ID"] == "big-1"
    assert ran == []


async def test_cross_origin_answers_carry_cors_headers_even_an_early_413(
    client: httpx.AsyncClient,
) -> None:
    # CORS is entered only by requests with an Origin (EdgeMiddleware), the early 413 included:
    # without the headers the web UI would see a CORS failure instead of the 413's message.
    origin = {"Origin": WEB_UI_ORIGIN}
    answered = await client.get("/api/v1/things/7", headers=origin)
    assert answered.headers["access-control-allow-origin"] == WEB_UI_ORIGIN
    assert "x-request-id" in answered.headers["access-control-expose-headers"].lower()
    too_large = await client.post("/api/v1/things/", json={"name": "x" * LIMIT}, headers=origin)
    assert too_large.status_code == 413
    assert too_large.headers["access-control-allow-origin"] == WEB_UI_ORIGIN
    same_origin = await client.get("/api/v1/things/7")
    assert "access-control-allow-origin" not in same_origin.headers


async def test_chunked_body_is_cut_off_while_it_arrives(client: httpx.AsyncClient) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"name": "'
        for _ in range(1000):  # 1 MB if it were all read
            pulled += 1
            yield b"x" * 1000
        yield b'"}'

    response = await client.post(
        "/api/v1/things/", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert pulled <= LIMIT // 1000 + 2
    assert ran == []


async def test_422_quotes_only_a_short_excerpt_of_the_input(client: httpx.AsyncClient) -> None:
    [error] = errors(await client.put("/api/v1/things/1", json={"name": "y" * 3000}))
    assert error["input"] == "y" * 100 + "…"
    missing = errors(await client.post("/api/v1/things/", json={"tags": ["z" * 1000]}))
    assert len(missing[0]["input"]) <= 101


# === BAD JSON ===
@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "\xff\xfe"}',  # not UTF-8
        b"[" * 2000 + b"]" * 2000,  # nested far too deep
        b'{"name": "x", "owner_id": ' + b"9" * 3000 + b"}",  # thousands of digits
        b'{"name": "x", "owner_id": 1e400}',
        b'{"name": NaN}',
    ],
)
async def test_unparseable_body_is_422_like_any_invalid_body(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        "/api/v1/things/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert len(response.content) < 1000
    assert ran == []


# === UNEXPECTED ERRORS ===
@pytest.fixture
def error_records() -> Iterator[list[logging.LogRecord]]:
    """Records of the middleware's logger, tagged with the request id like the real handler."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield records
    root.removeHandler(handler)


async def test_500_carries_the_request_id_and_is_logged_once(
    client: httpx.AsyncClient, error_records: list[logging.LogRecord]
) -> None:
    response = await client.delete("/api/v1/things/1", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert response.headers["X-Request-ID"] == "req-500"
    assert "secret" not in response.text
    traced = [record for record in error_records if record.exc_info]
    assert len(traced) == 1
    assert traced[0].request_id == "req-500"  # type: ignore[attr-defined]


# === METHODS ===
async def test_405_lists_every_method_of_the_resource(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/things/1")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, HEAD, PUT"
    assert response.json() == {"detail": "Method Not Allowed"}
    collection = await client.delete("/api/v1/things/")
    assert collection.headers["Allow"] == "GET, HEAD, POST"


async def test_head_is_answered_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/api/v1/things/7")
    head = await client.head("/api/v1/things/7")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


# === API DESCRIPTION ===
async def test_openapi_declares_the_shared_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    create = document["paths"]["/api/v1/things/"]["post"]["responses"]
    assert set(create) >= {"201", "413", "422", "503"}
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    assert create["413"]["content"]["application/json"]["schema"] == error_ref
    assert "X-Request-ID" in create["201"]["headers"]
    assert "413" not in document["paths"]["/api/v1/things/{thing_id}"]["get"]["responses"]
    update_responses = document["paths"]["/api/v1/things/{thing_id}"]["put"]["responses"]
    assert update_responses["400"]["description"] == "A malformed if-match header"
    assert update_responses["400"]["content"]["application/json"]["schema"] == error_ref
    for code in ("401", "403"):  # where authentication applies: every API route
        assert create[code]["content"]["application/json"]["schema"] == error_ref
        assert set(create[code]["headers"]) == {"WWW-Authenticate", "X-Request-ID"}
    links = create["201"]["links"]
    assert {link["operationId"].split("_")[0] for link in links.values()} == {
        "get",
        "update",
        "delete",
    }
    assert all(link["parameters"] == {"thing_id": "$response.body#/id"} for link in links.values())
    update = document["components"]["schemas"]["ThingUpdate"]["properties"]
    assert update["name"] == {"type": "string", "maxLength": 20, "title": "Name"}
    assert update["active"] == {"type": "boolean", "title": "Active"}


def test_a_router_without_the_shared_route_class_is_refused() -> None:
    plain = APIRouter()

    @plain.get("/x")
    async def x() -> None: ...

    with pytest.raises(TypeError, match="route_class"):
        create_web_app(
            ServiceSettings(), title="t", description="d", lifespan=no_resources, routers=[plain]
        )


# === ACCESS LOG SAMPLING ===
async def access_lines(
    caplog: pytest.LogCaptureFixture, paths: dict[str, int], **settings: Any
) -> list[str]:
    """The access lines an app with ``settings`` logs for GETs of ``paths`` (path → status)."""
    app = create_web_app(
        ServiceSettings(**settings, **TOKENS.settings()),
        title="t",
        description="d",
        lifespan=no_resources,
        routers=[router],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.INFO, logger="lkern.access"):
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=TOKENS.bearer()
        ) as http_client:
            for path, status in paths.items():
                assert (await http_client.get(path)).status_code == status
    return [record.getMessage() for record in caplog.records if record.name == "lkern.access"]


async def test_a_sampled_access_log_keeps_every_failed_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    paths = {"/api/v1/things/7": 200, "/api/v1/things/x": 422}
    lines = await access_lines(caplog, paths, log_requests_sample=0.0)
    assert len(lines) == 1 and "/api/v1/things/x -> 422" in lines[0]


async def test_a_slow_request_always_gets_its_access_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every request here takes longer than 0.001 ms: each is slow, none sampled away.
    paths = {"/api/v1/things/7": 200}
    lines = await access_lines(caplog, paths, log_requests_sample=0.0, log_slow_request_ms=0.001)
    assert len(lines) == 1 and "/api/v1/things/7 -> 200" in lines[0]
