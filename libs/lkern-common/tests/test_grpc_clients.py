"""
================================================================
FILE: test_grpc_clients.py
PATH: /libs/lkern-common/tests/test_grpc_clients.py
DESCRIPTION: Contacts gRPC clients and the gRPC server bootstrap against a real grpc.aio server
VERSION: v1.1.0
UPDATED: 2026-12-02 06:20:00
================================================================

A small in-memory ContactsService runs on a free local port through `GrpcServer`; the sync and
async clients, health, reflection, retries (service config), deadlines, request id metadata,
the error interceptor and graceful stop are checked against it. Also: the generated code is up
to date (`scripts/gen_grpc.py --check`) and both generated copies import in one process.
"""

# === IMPORTS ===
import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import exc as sa_exc

from lkern_common.grpc_auth import requires_scope
from lkern_common.grpc_clients.contacts import (
    CONTACTS_SERVICE_NAME,
    AsyncContactsClient,
    ContactsCircuitOpenError,
    ContactsClient,
    ContactsClientError,
    ContactsClientSettings,
    ContactsUnreachableError,
    ContactValidation,
    service_config,
)
from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_common.grpc_server import DATABASE_UNAVAILABLE_DETAILS, GrpcServer
from lkern_common.request_context import request_id_var
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import eventually, tls_channel

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[3]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVER = "lkms101-contacts"
CALLER = "lkms102-orders"


# === FAKE SERVICER ===
class FakeContactsServicer(contacts_pb2_grpc.ContactsServiceServicer):
    """In-memory ContactsService with knobs for failures, delays and call recording."""

    def __init__(self) -> None:
        self.contacts = {
            1: contacts_pb2.Contact(
                id=1, name="Ada", email="ada@example.com", is_active=True, version=3
            ),
            2: contacts_pb2.Contact(id=2, name="Bob", email="bob@example.com", is_active=False),
        }
        self.calls = 0
        self.unavailable_left = 0  # answer UNAVAILABLE this many times first
        self.delay = 0.0
        self.fail_with: Exception | None = None
        self.seen_metadata_ids: list[str | None] = []
        self.seen_context_ids: list[str | None] = []

    async def _before(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.calls += 1
        metadata = dict(context.invocation_metadata() or ())
        request_id = metadata.get("x-request-id")
        self.seen_metadata_ids.append(None if request_id is None else str(request_id))
        self.seen_context_ids.append(request_id_var.get())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.unavailable_left > 0:
            self.unavailable_left -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        if self.fail_with is not None:
            raise self.fail_with

    @requires_scope("contacts:read")
    async def GetContact(self, request: Any, context: Any) -> contacts_pb2.GetContactResponse:
        await self._before(context)
        contact = self.contacts.get(request.id)
        if contact is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"Contact with id {request.id} not found"
            )
        return contacts_pb2.GetContactResponse(contact=contact)

    @requires_scope("contacts:read")
    async def GetContactsByIds(
        self, request: Any, context: Any
    ) -> contacts_pb2.GetContactsByIdsResponse:
        await self._before(context)
        found = [self.contacts[i] for i in request.ids if i in self.contacts]
        return contacts_pb2.GetContactsByIdsResponse(contacts=found)

    @requires_scope("contacts:read")
    async def ValidateContact(
        self, request: Any, context: Any
    ) -> contacts_pb2.ValidateContactResponse:
        await self._before(context)
        contact = self.contacts.get(request.id)
        if contact is None:
            return contacts_pb2.ValidateContactResponse(
                is_valid=False, error_message=f"Contact with id {request.id} not found"
            )
        if not contact.is_active:
            return contacts_pb2.ValidateContactResponse(
                is_valid=False, error_message=f"Contact {contact.id} is inactive"
            )
        return contacts_pb2.ValidateContactResponse(is_valid=True)

    @requires_scope("contacts:read")
    async def ListContacts(self, request: Any, context: Any) -> contacts_pb2.ListContactsResponse:
        await self._before(context)
        page = sorted(i for i in self.contacts if i > request.after_id)[: request.page_size or 100]
        last = page[-1] if page else 0
        return contacts_pb2.ListContactsResponse(
            contacts=[self.contacts[i] for i in page], next_after_id=last
        )


# === FIXTURES ===
@dataclass
class Env:
    server: GrpcServer
    servicer: FakeContactsServicer
    target: str
    pki: DevPki
    clients: list[AsyncContactsClient] = field(default_factory=list)

    def settings(self, **overrides: Any) -> ContactsClientSettings:
        values: dict[str, Any] = {
            **tls_settings(self.pki),
            "target": self.target,
            "timeout_seconds": 2.0,
            "initial_backoff_seconds": 0.01,
            "max_backoff_seconds": 0.05,
        }
        values.update(overrides)
        return ContactsClientSettings(**values)

    def client(self, **overrides: Any) -> AsyncContactsClient:
        client = AsyncContactsClient(settings=self.settings(**overrides))
        self.clients.append(client)
        return client


def tls_settings(pki: DevPki, identity: str = CALLER) -> dict[str, Any]:
    """ContactsClientSettings fields: the CA and ``identity``'s client certificate."""
    files = pki.tls_files(identity)
    return {"tls_ca": files.ca, "tls_cert": files.cert, "tls_key": files.key}


def make_server(pki: DevPki, **options: Any) -> GrpcServer:
    """A contacts-like server on mutual TLS that grants the caller contacts:read."""
    return GrpcServer(
        tls=pki.tls_files(SERVER),
        client_scopes={CALLER: ["contacts:read"]},
        host="127.0.0.1",
        **options,
    )


@pytest.fixture
async def env(dev_pki: DevPki) -> AsyncIterator[Env]:
    servicer = FakeContactsServicer()
    server = make_server(dev_pki, port=0, grace_seconds=0)
    server.add_servicer(
        contacts_pb2_grpc.add_ContactsServiceServicer_to_server, servicer, CONTACTS_SERVICE_NAME
    )
    port = await server.start()
    environment = Env(server=server, servicer=servicer, target=f"127.0.0.1:{port}", pki=dev_pki)
    yield environment
    for client in environment.clients:
        await client.close()
    await server.stop(0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _health(pki: DevPki, target: str, service: str = "") -> int:
    async with tls_channel(pki, target, CALLER) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(response.status)


async def _wait_health(pki: DevPki, target: str, expected: int, service: str = "") -> None:
    for _ in range(100):
        if await _health(pki, target, service) == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"health of {service!r} never became {expected}")


# === ASYNC CLIENT ===
async def test_async_client_found_not_found_and_validate(env: Env) -> None:
    async with AsyncContactsClient(env.target, settings=env.settings()) as client:
        contact = await client.get_contact(1)
        assert contact is not None
        assert (contact.id, contact.name, contact.is_active, contact.version) == (1, "Ada", True, 3)
        assert await client.get_contact(404) is None

        assert await client.validate_contact(1) is True
        assert await client.validate_contact(2) is False
        is_valid, message = await client.validate_contact_detailed(2)
        assert (is_valid, message) == (False, "Contact 2 is inactive")
        assert await client.validate_contact_detailed(404) == ContactValidation(
            False, "Contact with id 404 not found"
        )


async def test_async_client_get_contacts_by_ids(env: Env) -> None:
    client = env.client()
    contacts = await client.get_contacts_by_ids([2, 1, 404, 1])
    assert sorted(c.id for c in contacts) == [1, 2]
    calls = env.servicer.calls
    assert await client.get_contacts_by_ids([]) == []
    assert env.servicer.calls == calls  # no round trip for an empty batch


# === SYNC CLIENT ===
async def test_sync_client_standard_behaviour(env: Env) -> None:
    def scenario() -> tuple[Any, ...]:
        with ContactsClient(env.target, settings=env.settings()) as client:
            return (
                client.get_contact(1),
                client.get_contact(404),
                client.validate_contact(1),
                client.validate_contact(2),
                client.validate_contact(404),
            )

    found, missing, valid, inactive, unknown = await asyncio.to_thread(scenario)
    assert found is not None and found.email == "ada@example.com"
    assert missing is None
    assert (valid, inactive, unknown) == (True, False, False)


async def test_sync_client_target_from_environment(
    monkeypatch: pytest.MonkeyPatch, dev_pki: DevPki
) -> None:
    for name, value in tls_settings(dev_pki).items():
        monkeypatch.setenv(f"GRPC_{name.upper()}", str(value))
    monkeypatch.setenv("CONTACTS_GRPC_TARGET", "lkms101-contacts:5101")
    monkeypatch.setenv("CONTACTS_GRPC_TIMEOUT_SECONDS", "0.5")
    client = ContactsClient()
    try:
        assert client.host == "lkms101-contacts:5101"
        assert client.settings.timeout_seconds == 0.5
        assert client.settings.tls_cert == dev_pki.cert_file(CALLER)
    finally:
        client.close()
    monkeypatch.delenv("CONTACTS_GRPC_TARGET")
    assert ContactsClientSettings().target == "localhost:5101"


async def test_sync_client_unreachable_reads_as_none(dev_pki: DevPki) -> None:
    settings = ContactsClientSettings(
        **tls_settings(dev_pki),
        target=f"127.0.0.1:{_free_port()}",
        timeout_seconds=1.0,
        initial_backoff_seconds=0.01,
    )

    def scenario() -> tuple[Any, bool]:
        with ContactsClient(settings=settings) as client:
            return client.get_contact(1), client.validate_contact(1)

    assert await asyncio.to_thread(scenario) == (None, False)


# === RETRY AND DEADLINE ===
async def test_retry_unavailable_through_service_config(env: Env) -> None:
    env.servicer.unavailable_left = 2
    contact = await env.client().get_contact(1)
    assert contact is not None and contact.id == 1
    assert env.servicer.calls == 3  # two UNAVAILABLE answers retried by gRPC itself

    env.servicer.unavailable_left = 2

    def sync_call() -> bool:
        with ContactsClient(settings=env.settings()) as client:
            return client.validate_contact(1)

    assert await asyncio.to_thread(sync_call) is True


async def test_retry_gives_up_after_max_attempts(env: Env) -> None:
    env.servicer.unavailable_left = 100
    with pytest.raises(ContactsUnreachableError) as caught:
        await env.client(max_attempts=3).validate_contact_detailed(1)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert env.servicer.calls == 3


async def test_no_retry_policy_with_one_attempt() -> None:
    config = service_config(ContactsClientSettings(max_attempts=1))
    assert "retryPolicy" not in config["methodConfig"][0]
    policy = service_config(ContactsClientSettings())["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert policy["maxAttempts"] == 3


async def test_unreachable_service_raises_unavailable(dev_pki: DevPki) -> None:
    settings = ContactsClientSettings(
        **tls_settings(dev_pki),
        target=f"127.0.0.1:{_free_port()}",
        timeout_seconds=1.0,
        initial_backoff_seconds=0.01,
    )
    async with AsyncContactsClient(settings=settings) as client:
        with pytest.raises(ContactsUnreachableError) as caught:
            await client.validate_contact(1)
    assert caught.value.code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def test_deadline_is_applied(env: Env) -> None:
    env.servicer.delay = 1.5
    started = time.monotonic()
    with pytest.raises(ContactsUnreachableError) as caught:
        await env.client(timeout_seconds=0.2).get_contact(1)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.0


# === CIRCUIT BREAKER ===
async def test_circuit_breaker_opens_fails_fast_and_lets_one_probe_through(env: Env) -> None:
    client = env.client(timeout_seconds=0.5, breaker_failure_threshold=2, breaker_open_seconds=1.0)
    env.servicer.delay = 2.0  # contacts hangs: every call waits the deadline
    with pytest.raises(ContactsUnreachableError):
        await client.validate_contact_detailed(1)
    env.servicer.delay = 0.0
    assert await client.get_contact(99) is None  # an answer (NOT_FOUND): contacts is there
    env.servicer.delay = 2.0
    for _ in range(2):  # two unreachable calls in a row open the circuit
        with pytest.raises(ContactsUnreachableError) as caught:
            await client.validate_contact_detailed(1)
        assert not isinstance(caught.value, ContactsCircuitOpenError)
    assert client.breaker.state == "opened"

    calls = env.servicer.calls
    started = time.monotonic()
    with pytest.raises(ContactsCircuitOpenError) as refused:
        await client.get_contact(1)
    assert time.monotonic() - started < 0.1  # at once, contacts not called
    assert env.servicer.calls == calls
    assert refused.value.retry_after_seconds == 1

    # After the open period: one probe at a time; the others are still refused at once.
    env.servicer.delay = 0.3
    await asyncio.sleep(1.1)
    probe = asyncio.create_task(client.validate_contact_detailed(1))
    await eventually(lambda: env.servicer.calls > calls, "the half-open probe reached contacts")
    with pytest.raises(ContactsCircuitOpenError):
        await client.get_contact(1)
    assert (await probe).is_valid  # the probe found contacts back: closed
    assert client.breaker.state == "closed"
    env.servicer.delay = 0.0
    assert (await client.get_contact(1)).id == 1


# === REQUEST ID ===
async def test_request_id_travels_as_metadata(env: Env) -> None:
    client = env.client()
    token = request_id_var.set("req-abc-123")
    try:
        await client.get_contact(1)
    finally:
        request_id_var.reset(token)
    assert env.servicer.seen_metadata_ids[-1] == "req-abc-123"
    assert env.servicer.seen_context_ids[-1] == "req-abc-123"  # set by the server interceptor

    await client.get_contact(1)  # no request id in the caller: the server makes one
    assert env.servicer.seen_metadata_ids[-1] is None
    generated = env.servicer.seen_context_ids[-1]
    assert generated is not None and len(generated) == 32
    assert request_id_var.get() is None


# === SERVER BOOTSTRAP ===
async def test_unhandled_exception_becomes_internal(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.servicer.fail_with = RuntimeError("database password is hunter2")
    with (
        caplog.at_level(logging.ERROR, logger="lkern_common.grpc_server"),
        pytest.raises(ContactsClientError) as caught,
    ):
        await env.client().get_contact(1)
    assert not isinstance(caught.value, ContactsUnreachableError)
    assert caught.value.code == grpc.StatusCode.INTERNAL
    assert caught.value.details == "Internal server error"
    assert "hunter2" not in str(caught.value)
    assert any("Unhandled error in gRPC method" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "error",
    [
        # How SQLAlchemy raises a server that is shutting down: a plain DBAPIError.
        sa_exc.DBAPIError(
            "SELECT 1", None, asyncpg.CannotConnectNowError("the database system is shutting down")
        ),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # a raw driver error
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["shutting-down-as-DBAPIError", "asyncpg-too-many-connections", "refused"],
)
async def test_database_unavailable_becomes_unavailable_not_internal(
    env: Env, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    env.servicer.fail_with = error
    with (
        caplog.at_level(logging.WARNING, logger="lkern_common.grpc_server"),
        pytest.raises(ContactsUnreachableError) as caught,
    ):
        await env.client(max_attempts=1, breaker_failure_threshold=100).get_contact(1)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details == DATABASE_UNAVAILABLE_DETAILS
    logged = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is None  # one line, no stack trace


async def test_health_serving_switch(env: Env) -> None:
    assert await _health(env.pki, env.target) == SERVING
    assert await _health(env.pki, env.target, CONTACTS_SERVICE_NAME) == SERVING
    await env.server.set_serving(False)
    assert await _health(env.pki, env.target) == NOT_SERVING
    assert await _health(env.pki, env.target, CONTACTS_SERVICE_NAME) == NOT_SERVING
    await env.server.set_serving(True)
    assert await _health(env.pki, env.target, CONTACTS_SERVICE_NAME) == SERVING


async def test_health_watch_follows_the_check(env: Env) -> None:
    state: dict[str, Any] = {"ok": True}

    async def database_answers() -> bool:
        if isinstance(state["ok"], Exception):
            raise state["ok"]
        return bool(state["ok"])

    task = env.server.health_watch(database_answers, interval=0.02)
    await _wait_health(env.pki, env.target, SERVING, CONTACTS_SERVICE_NAME)
    state["ok"] = False
    await _wait_health(env.pki, env.target, NOT_SERVING, CONTACTS_SERVICE_NAME)
    state["ok"] = True
    await _wait_health(env.pki, env.target, SERVING)
    state["ok"] = ConnectionRefusedError("db down")
    await _wait_health(env.pki, env.target, NOT_SERVING)
    await env.server.stop(0)
    assert task.cancelled()


async def test_reflection_lists_contacts_service(env: Env) -> None:
    async with tls_channel(env.pki, env.target, CALLER) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=CONTACTS_SERVICE_NAME),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests), timeout=2)]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {CONTACTS_SERVICE_NAME, "grpc.health.v1.Health"} <= names
    files = responses[1].file_descriptor_response.file_descriptor_proto
    assert files, "reflection could not describe contacts.ContactsService"


async def test_graceful_stop_finishes_in_flight_and_refuses_new(env: Env) -> None:
    env.servicer.delay = 0.5
    in_flight = asyncio.create_task(env.client().get_contact(1))
    await asyncio.sleep(0.2)
    stopping = asyncio.create_task(env.server.stop(grace=3))
    await asyncio.sleep(0.1)
    with pytest.raises(ContactsUnreachableError):
        await env.client(max_attempts=1).get_contact(1)
    contact = await in_flight
    assert contact is not None and contact.id == 1
    await stopping


async def test_port_clash_fails_loudly(env: Env) -> None:
    other = make_server(env.pki, port=env.server.port)
    with pytest.raises(RuntimeError):
        await other.start()


async def test_add_servicer_after_start_is_refused(env: Env) -> None:
    with pytest.raises(RuntimeError):
        env.server.add_servicer(
            contacts_pb2_grpc.add_ContactsServiceServicer_to_server,
            FakeContactsServicer(),
            CONTACTS_SERVICE_NAME,
        )


# === GENERATED CODE ===
def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_grpc.py"), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_both_generated_copies_import_in_one_process() -> None:
    server_copy = REPO_ROOT / "services" / "lkms101-contacts" / "app" / "grpc"
    code = textwrap.dedent(
        f"""
        import importlib, sys, types
        # The server copy, loaded as a package without running app/ or app/grpc/__init__.py.
        package = types.ModuleType("server_copy")
        package.__path__ = [{str(server_copy)!r}]
        sys.modules["server_copy"] = package
        server_pb2 = importlib.import_module("server_copy.contacts_pb2")
        importlib.import_module("server_copy.contacts_pb2_grpc")
        from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
        assert server_pb2.Contact is contacts_pb2.Contact
        wire = server_pb2.GetContactResponse(contact=server_pb2.Contact(id=7, version=2))
        back = contacts_pb2.GetContactResponse.FromString(wire.SerializeToString())
        assert back.contact.version == 2
        """
    )
    for implementation in ("upb", "python"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": implementation},
        )
        assert result.returncode == 0, f"{implementation}: {result.stderr}"
