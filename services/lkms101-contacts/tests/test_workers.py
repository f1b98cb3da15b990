"""
================================================================
FILE: test_workers.py
PATH: /services/lkms101-contacts/tests/test_workers.py
DESCRIPTION: The service as `python -m app` with HTTP_WORKERS=2: REST, gRPC, one publishing relay
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================

Each worker runs the whole app: REST on the shared HTTP socket, a gRPC server on the shared gRPC
port (SO_REUSEPORT), an outbox relay (one leads, the other stands by). Runs on a database of its
own, so that no relay of another test competes for the outbox lock.
"""

# === IMPORTS ===
import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc.aio
import httpx
import psutil
import pytest

from app.kafka.events import CONTACT_TOPICS
from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.process import ServiceProcess
from lkern_devstack.testing import CollectedEvent, EventCollector, TestDatabase

# === CONSTANTS ===
SERVICE_DIR = Path(__file__).resolve().parents[1]
WORKERS = 2
CONTACTS = 20


# === FIXTURES ===
@pytest.fixture(scope="module")
def own_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "contacts_workers")
    database.create()
    yield database
    database.drop()


def service_env(database: TestDatabase, broker: LocalBroker, grpc_port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "HTTP_HOST": "127.0.0.1",
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(grpc_port),
        "HTTP_WORKERS": str(WORKERS),
        "LOG_REQUESTS": "false",
    }


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return []


@pytest.fixture(scope="module")
def service(
    own_database: TestDatabase, kafka_broker: LocalBroker, lines: list[str]
) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        "contacts-workers",
        env=service_env(own_database, kafka_broker, free_port()),
        http_port=free_port(),
        service_dir=SERVICE_DIR,
        sink=lambda _name, line: lines.append(line),
    )
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


# === TESTS ===
def grpc_listeners(service: ServiceProcess) -> list[int]:
    """The pids of the worker processes that listen on the service's gRPC port."""
    assert service.pid is not None
    grpc_port = int(service.env["GRPC_PORT"])
    found = []
    for child in psutil.Process(service.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "spawn_main" in " ".join(child.cmdline()) and any(
                connection.status == psutil.CONN_LISTEN and connection.laddr.port == grpc_port
                for connection in child.net_connections(kind="tcp")
            ):
                found.append(child.pid)
    return found


def test_every_worker_runs_a_grpc_server_on_the_shared_port(service: ServiceProcess) -> None:
    deadline = time.monotonic() + 30
    while len(grpc_listeners(service)) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.2)  # /ready answered when the first worker was up
    assert len(grpc_listeners(service)) == WORKERS


async def test_rest_grpc_and_events_with_two_workers(
    service: ServiceProcess, kafka_broker: LocalBroker
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with EventCollector(kafka_broker.bootstrap_servers, CONTACT_TOPICS) as collector:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as client:
            # Separate connections, so that both workers take requests.
            created = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/contacts/",
                        json={"name": f"Worker {i}", "email": f"w{i}-{tag}@example.com"},
                        headers={"Connection": "close"},
                    )
                    for i in range(CONTACTS)
                )
            )
        assert [response.status_code for response in created] == [201] * CONTACTS
        ids = sorted(response.json()["id"] for response in created)

        # Every new gRPC channel is a new connection: any worker may take it.
        grpc_port = int(service.env["GRPC_PORT"])
        for contact_id in ids[:6]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = contacts_pb2_grpc.ContactsServiceStub(channel)
                answer = await stub.GetContact(contacts_pb2.GetContactRequest(id=contact_id))
            assert answer.contact.id == contact_id

        # One relay leads: every event is published, none twice.
        def ours(events: list[CollectedEvent]) -> list[CollectedEvent]:
            return [e for e in events if tag in e.value["contact_email"]]

        events = await collector.wait_for(lambda got: len(ours(got)) >= CONTACTS)
        await asyncio.sleep(1.0)  # a duplicate, if any, would arrive now
        published = ours(collector.events)
        assert len(published) == CONTACTS
        assert len({e.event_id for e in published}) == CONTACTS
        assert sorted(e.value["contact_id"] for e in ours(events)) == ids


def test_grpc_port_held_by_another_program_fails_at_start(
    own_database: TestDatabase, kafka_broker: LocalBroker, service: ServiceProcess
) -> None:
    taken = int(service.env["GRPC_PORT"])
    lines: list[str] = []
    clash = ServiceProcess(
        "contacts-clash",
        env=service_env(own_database, kafka_broker, taken),
        http_port=free_port(),
        service_dir=SERVICE_DIR,
        sink=lambda _name, line: lines.append(line),
    )
    clash.start()
    try:
        assert clash.process is not None
        assert clash.process.wait(60) != 0
    finally:
        clash.stop()
    assert any(f"gRPC port {taken} on 127.0.0.1 is already in use" in line for line in lines)
