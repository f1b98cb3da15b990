"""
================================================================
FILE: test_service.py
PATH: /libs/lkern-common/tests/test_service.py
DESCRIPTION: create_service_app: the lifespan a ServiceSpec declares, its hooks, its scope check
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

A real database (with the shared outbox, idempotency and runtime settings tables, made by
their migration helpers) and the session's real broker; the spec is a small one made here.
"""

# === IMPORTS ===
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lkern_common.idempotency import create_idempotency_table_v1
from lkern_common.outbox.model import create_outbox_table_v1
from lkern_common.registry import load_service_entry
from lkern_common.runtime_config import create_runtime_settings_table_v1
from lkern_common.service import LifespanHook, ServiceContext, ServiceSpec, create_service_app
from lkern_common.settings import ServiceSettings
from lkern_common.web.health import CheckResult, ReadinessCheck
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TestDatabase, TestTokens

# === CONSTANTS ===
SERVICE_DIR = Path(__file__).resolve().parents[3] / "services" / "lkms101-contacts"
ENTRY = load_service_entry(SERVICE_DIR)
TOKENS = TestTokens.temporary()


# === FIXTURES ===
def create_shared_tables(connection: Connection) -> None:
    operations = Operations(MigrationContext.configure(connection))
    create_outbox_table_v1(operations)
    create_idempotency_table_v1(operations)
    create_runtime_settings_table_v1(operations)


async def prepare(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(create_shared_tables)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "spec")
    database.create(migrate=False)
    asyncio.run(prepare(database.url))
    yield database
    database.drop()


@pytest.fixture
def settings(database: TestDatabase, kafka_broker: LocalBroker, dev_pki: DevPki) -> ServiceSettings:
    return ServiceSettings(
        **TOKENS.settings(),
        **dev_pki.event_settings(ENTRY.name),
        service_name=ENTRY.name,
        database_url=database.url,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        log_requests=False,
    )


# === HELPERS ===
def router_needing(scope: str) -> APIRouter:
    router = APIRouter(prefix="/things", route_class=ApiRoute)

    @router.get("/", dependencies=[requires(scope)])
    async def things() -> list[str]:
        return []

    return router


# === TESTS ===
async def test_the_lifespan_runs_the_spec_in_order_and_closes_it_in_reverse(
    settings: ServiceSettings,
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def client(context: ServiceContext[ServiceSettings]) -> AsyncIterator[str]:
        # Entered after the database (it is usable here) and closed before it is disposed.
        assert await context.db.ping()
        events.append("client open")
        yield "the client"
        assert await context.db.ping()
        events.append("client closed")

    def readiness(resource: str) -> ReadinessCheck:
        async def check() -> CheckResult:
            return CheckResult(ok=True, details={"resource": resource})

        return check

    def hook(app: FastAPI, hooked: ServiceSettings) -> None:
        events.append(f"app hook for {hooked.service_name}")

    spec: ServiceSpec[ServiceSettings] = ServiceSpec(
        entry=ENTRY,
        routers=[router_needing("contacts:read")],
        published_topics=lambda _settings: ("lkern.contacts.spec-test",),
        resources=[LifespanHook("client", client, readiness)],
        app_hooks=[hook],
    )
    app = create_service_app(spec, settings)
    assert events == ["app hook for lkms101-contacts"]
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        assert app.state.client == "the client"
        assert app.state.outbox_relay is not None and not hasattr(app.state, "grpc_server")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            ready = await http.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["client"]["resource"] == "the client"
            things = await http.get("/api/v1/things/", headers=TOKENS.bearer("contacts:read"))
            assert things.status_code == 200
    assert events[1:] == ["client open", "client closed"]


def test_a_route_needing_an_undeclared_scope_refuses_the_app(settings: ServiceSettings) -> None:
    spec: ServiceSpec[ServiceSettings] = ServiceSpec(
        entry=ENTRY,
        routers=[router_needing("orders:write")],
        published_topics=lambda _settings: (),
    )
    with pytest.raises(RuntimeError, match="GET /things/ needs orders:write"):
        create_service_app(spec, settings)
