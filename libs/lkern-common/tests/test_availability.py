"""
================================================================
FILE: test_availability.py
PATH: /libs/lkern-common/tests/test_availability.py
DESCRIPTION: "The database is not available right now": one classification, REST's 503 with
             Retry-After (logged once with the request id, no trace), never a 500
VERSION: v1.0.0
UPDATED: 2026-12-02 06:10:00
================================================================

The classification itself is pure logic (exceptions built as the driver and SQLAlchemy raise
them). The REST answers are checked on an app built by ``create_web_app`` whose routes
meet a real PostgreSQL that ends their connection, and a real port where nothing listens.
(gRPC's UNAVAILABLE: test_grpc_clients.py; the real server stopped under load:
tests/faults/test_postgres_stop.py.)
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from asyncpg.exceptions._base import DataError as ClientDataError
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import exc as sa_exc

from lkern_common.auth import CONTACTS_READ
from lkern_common.database import Database, Query, is_database_unavailable
from lkern_common.logging_setup import RequestIdFilter
from lkern_common.settings import ServiceSettings
from lkern_common.web.app_factory import create_web_app
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires
from lkern_devstack.broker import free_port
from lkern_devstack.testing import TestDatabase, TestTokens

# === CONSTANTS ===
LIB_DIR = Path(__file__).resolve().parents[1]
TOKENS = TestTokens.temporary()
SHUTTING_DOWN = asyncpg.CannotConnectNowError("the database system is shutting down")


# === CLASSIFICATION (pure) ===
@pytest.mark.parametrize(
    "error",
    [
        sa_exc.DBAPIError("SELECT 1", None, SHUTTING_DOWN),  # how SQLAlchemy wraps it
        SHUTTING_DOWN,
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        sa_exc.OperationalError("SELECT 1", None, ConnectionResetError(104, "reset")),
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 0 reached"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_that_mean_the_database_is_away(error: Exception) -> None:
    assert is_database_unavailable(error)


def test_an_error_raised_from_an_outage_is_one() -> None:
    try:
        try:
            raise SHUTTING_DOWN
        except asyncpg.PostgresError as inner:
            raise RuntimeError("the session could not begin") from inner
    except RuntimeError as outer:
        assert is_database_unavailable(outer)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", None, asyncpg.UniqueViolationError("duplicate key")),
        sa_exc.DBAPIError("SELECT", None, asyncpg.UndefinedColumnError("column x")),
        # asyncpg's client-side DataError (an argument it cannot encode), as SQLAlchemy wraps it
        sa_exc.InterfaceError("SELECT", None, ClientDataError("invalid input for $1")),
        asyncpg.DataError("invalid input syntax for type integer"),  # SQLSTATE 22P02
        FileNotFoundError(2, "No such file"),
        ValueError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_that_are_bugs(error: Exception) -> None:
    assert not is_database_unavailable(error)


# === REST ===
router = APIRouter(prefix="/probe", tags=["probe"], route_class=ApiRoute)
SELECT_ONE = Query(sa.select(sa.literal(1).label("one")))


@router.get("/hot-read", dependencies=[requires(CONTACTS_READ)])
async def hot_read(request: Request) -> dict[str, int]:
    """A read on the driver (asyncpg's own errors)."""
    row = await request.app.state.db.fetch_one(SELECT_ONE)
    return {"one": row.one}


@router.get("/terminated", dependencies=[requires(CONTACTS_READ)])
async def terminated(request: Request) -> dict[str, int]:
    """A transaction whose connection the server ends (as an administrator or a shutdown)."""
    async with request.app.state.db.transaction() as session:
        await session.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
    return {"one": 1}


@router.get("/shutting-down", dependencies=[requires(CONTACTS_READ)])
async def shutting_down() -> dict[str, int]:
    """What a new connection meets while the server stops, as SQLAlchemy raises it."""
    raise sa_exc.DBAPIError("SELECT 1", None, SHUTTING_DOWN)


@router.get("/bug", dependencies=[requires(CONTACTS_READ)])
async def bug() -> dict[str, int]:
    raise sa_exc.DBAPIError("SELECT x", None, asyncpg.UndefinedColumnError("column x"))


def make_app(database_url: str) -> FastAPI:
    settings = ServiceSettings(database_url=database_url, log_requests=False, **TOKENS.settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings)
        yield
        await app.state.db.dispose()

    return create_web_app(settings, title="t", description="d", lifespan=lifespan, routers=[router])


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    database = TestDatabase(LIB_DIR, "common_availability")
    yield database.create(migrate=False)
    database.drop()


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=TOKENS.bearer()
        ) as client,
    ):
        yield client


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every log record, tagged with the request id like the real handler."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep(level=logging.INFO)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield kept
    root.removeHandler(handler)


def assert_503_logged_once(
    response: httpx.Response, records: list[logging.LogRecord], request_id: str
) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"] == request_id
    assert response.json() == {
        "detail": "Service temporarily unavailable: the database cannot be reached"
    }
    lines = [r for r in records if "database unavailable" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in records]
    assert lines[0].request_id == request_id  # type: ignore[attr-defined]
    assert all(r.exc_info is None for r in records), "a stack trace was logged"


@pytest.mark.parametrize("path", ["/terminated", "/shutting-down"])
async def test_an_outage_met_by_a_request_is_503_with_retry_after(
    database_url: str, records: list[logging.LogRecord], path: str
) -> None:
    async with client_of(make_app(database_url)) as client:
        response = await client.get(f"/api/v1/probe{path}", headers={"X-Request-ID": "req-503"})
        assert_503_logged_once(response, records, "req-503")
        records.clear()
        # The pool drops the dead connection: the next request is served.
        assert (await client.get("/api/v1/probe/hot-read")).json() == {"one": 1}


async def test_a_refused_connection_is_503_on_the_driver_path_too(
    records: list[logging.LogRecord],
) -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none"
    async with client_of(make_app(nowhere)) as client:
        response = await client.get("/api/v1/probe/hot-read", headers={"X-Request-ID": "req-x"})
    assert_503_logged_once(response, records, "req-x")


async def test_a_database_bug_is_still_a_500(
    database_url: str, records: list[logging.LogRecord]
) -> None:
    async with client_of(make_app(database_url)) as client:
        response = await client.get("/api/v1/probe/bug")
    assert response.status_code == 500
    assert len([r for r in records if r.exc_info]) == 1  # logged once, with its trace
