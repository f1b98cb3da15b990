"""
================================================================
FILE: test_orders_contacts.py
PATH: /tests/e2e/test_orders_contacts.py
DESCRIPTION: End-to-end: contacts and orders as processes, linked by gRPC and contact events
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from lkern_devstack.testing import eventually_blocking
from tests.e2e.conftest import RunningStack, paused

# === CONSTANTS ===
PROPAGATION_SECONDS = 5.0


# === HELPERS ===
def read_model_row(stack: RunningStack, contact_id: int) -> dict[str, Any] | None:
    async def fetch() -> dict[str, Any] | None:
        connection = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{stack.ports['postgres_port']}/lkms102_orders"
        )
        try:
            row = await connection.fetchrow(
                "SELECT * FROM contacts_read_model WHERE id = $1", contact_id
            )
            return dict(row) if row else None
        finally:
            await connection.close()

    return asyncio.run(fetch())


def kafka(stack: RunningStack) -> str:
    return f"127.0.0.1:{stack.ports['kafka_port']}"


def read_topic(stack: RunningStack, topic: str, match: Callable[[bytes], bool]) -> list[bytes]:
    """Every message of ``topic`` (from the start) whose raw value matches."""

    async def consume() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka(stack),
            group_id=f"e2e-reader-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        found: list[bytes] = []
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not found:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found += [r.value for r in records if r.value is not None and match(r.value)]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(consume())


def produce(stack: RunningStack, topic: str, value: bytes, key: bytes | None = None) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka(stack), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def contacts_process(stack: RunningStack) -> psutil.Process:
    for process in stack.descendants():
        if "-m app" in " ".join(process.cmdline()) and process.cwd().endswith("lkms101-contacts"):
            return process
    raise AssertionError("the contacts process is not running")


# === TESTS ===
def test_contact_events_reach_orders_and_validation_guards_new_orders(stack: RunningStack) -> None:
    contacts, orders = stack.url("contacts"), stack.url("orders")
    with stack.client(timeout=10.0) as client:
        # A new contact appears in orders' read model.
        created = client.post(
            f"{contacts}/api/v1/contacts/", json={"name": "Flow Ltd", "email": "flow@example.com"}
        )
        contact_id = created.json()["id"]
        eventually_blocking(
            lambda: read_model_row(stack, contact_id) is not None,
            "contact in read model",
            timeout_s=PROPAGATION_SECONDS,
        )

        # An order for it: 201 with its name.
        order = client.post(
            f"{orders}/api/v1/orders/",
            json={
                "contact_id": contact_id,
                "lines": [{"description": "x", "quantity": 1, "unit_price": 5}],
            },
        )
        assert order.status_code == 201, order.text
        order_id = order.json()["id"]
        assert order.json()["contact"]["name"] == "Flow Ltd"

        def order_shows(name: str) -> bool:
            shown = client.get(f"{orders}/api/v1/orders/{order_id}").json()
            return bool(shown["contact"]["name"] == name)

        # A rename shows on the order within 5 seconds.
        client.put(f"{contacts}/api/v1/contacts/{contact_id}", json={"name": "Flow Two"})
        eventually_blocking(
            lambda: order_shows("Flow Two"),
            "the order shows the new name",
            timeout_s=PROPAGATION_SECONDS,
        )
        client.put(f"{contacts}/api/v1/contacts/{contact_id}", json={"name": "Flow Three"})
        eventually_blocking(
            lambda: order_shows("Flow Three"),
            "the order shows the newest name",
            timeout_s=PROPAGATION_SECONDS,
        )

        # The same (older) event delivered again changes nothing.
        def is_rename_to_two(value: bytes) -> bool:
            try:
                event = orjson.loads(value)
            except orjson.JSONDecodeError:
                return False
            return bool(event.get("contact", {}).get("name") == "Flow Two")

        [old_event] = read_topic(stack, "lkern.contacts.updated", is_rename_to_two)
        produce(stack, "lkern.contacts.updated", old_event, key=str(contact_id).encode())
        time.sleep(2)
        assert order_shows("Flow Three")
        assert read_model_row(stack, contact_id)["version"] == 3  # type: ignore[index]

        # A poison message lands in the dead-letter topic; the next event is still applied.
        marker = f"poison-{uuid.uuid4().hex}".encode()
        produce(stack, "lkern.contacts.updated", b"{not json " + marker)
        assert read_topic(stack, "lkern.orders.dlq", lambda value: marker in value)
        client.put(f"{contacts}/api/v1/contacts/{contact_id}", json={"name": "Flow Four"})
        eventually_blocking(
            lambda: order_shows("Flow Four"),
            "the event after the poison message",
            timeout_s=PROPAGATION_SECONDS,
        )

        # Deactivated: a new order is refused.
        client.put(f"{contacts}/api/v1/contacts/{contact_id}", json={"is_active": False})
        refused = client.post(
            f"{orders}/api/v1/orders/",
            json={
                "contact_id": contact_id,
                "lines": [{"description": "x", "quantity": 1, "unit_price": 5}],
            },
        )
        assert refused.status_code == 400
        assert "inactive" in refused.json()["detail"]


def test_contacts_unreachable_is_503_and_recovers(stack: RunningStack) -> None:
    contacts, orders = stack.url("contacts"), stack.url("orders")
    with stack.client(timeout=30.0) as client:
        contact_id = client.post(
            f"{contacts}/api/v1/contacts/", json={"name": "Paused", "email": "paused@example.com"}
        ).json()["id"]
        body = {
            "contact_id": contact_id,
            "lines": [{"description": "x", "quantity": 1, "unit_price": 1}],
        }
        before = client.get(f"{orders}/api/v1/orders/").headers["X-Total-Count"]
        # Contacts and its HTTP workers stop answering (their ports stay open).
        with paused(contacts_process(stack)):
            unavailable = client.post(f"{orders}/api/v1/orders/", json=body)
            assert unavailable.status_code == 503, unavailable.text
            assert "contacts" in unavailable.json()["detail"].lower()
            assert client.get(f"{orders}/api/v1/orders/").headers["X-Total-Count"] == before
        eventually_blocking(
            lambda: client.post(f"{orders}/api/v1/orders/", json=body).status_code == 201,
            "order creation works again",
            timeout_s=15,
        )
