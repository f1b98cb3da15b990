"""
================================================================
FILE: test_consumer.py
PATH: /services/lkms102-orders/tests/test_consumer.py
DESCRIPTION: Contact events into the read model, against a real broker and PostgreSQL: versions,
             deletes, duplicates, poison, unsigned and forged messages to the dead-letter topic;
             and the whole path from the contacts service process to an order response
VERSION: v1.2.0
UPDATED: 2026-12-02 06:15:00
================================================================

The standalone consumer below works on a database of its own, so that the app's consumer (which
reads the same topics into the main test database) cannot claim its events in a shared inbox.
"""

# === IMPORTS ===
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy import func, select

from app.config import Settings
from app.database import Database
from app.kafka.consumer import create_contact_events_consumer
from app.models.contact import ContactReadModel
from lkern_common.contracts.contacts import ContactCreated, ContactDeleted, ContactUpdated
from lkern_common.event_signing import SIGNATURE_HEADER, EventSigner
from lkern_common.events import build_event
from lkern_common.kafka.consumer import IdempotentConsumer
from lkern_common.kafka.inbox import InboxEvent
from lkern_common.kafka.topics import ensure_topics
from lkern_devstack.broker import LocalBroker
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TestDatabase, eventually
from tests.conftest import (
    CONTACTS,
    ORDERS_API,
    SERVICE,
    SERVICE_DIR,
    ContactsService,
    make_settings,
    read_topic,
)

# === CONSTANTS ===
CONTACT_CREATED_TOPIC = ContactCreated.TOPIC
CONTACT_UPDATED_TOPIC = ContactUpdated.TOPIC
CONTACT_DELETED_TOPIC = ContactDeleted.TOPIC
EVENT_TYPES = {
    CONTACT_CREATED_TOPIC: "ContactCreated",
    CONTACT_UPDATED_TOPIC: "ContactUpdated",
    CONTACT_DELETED_TOPIC: "ContactDeleted",
}
LINE = {"description": "Widget", "quantity": "1", "unit_price": "10"}


# === HELPERS ===


def contact_event(
    topic: str, contact_id: int, version: int, *, name: str | None = None, active: bool = True
) -> tuple[str, dict[str, Any]]:
    """A contact event exactly as lkms101-contacts builds it; returns (event_id, payload)."""
    snapshot = {
        "id": contact_id,
        "name": name or f"Contact {contact_id} v{version}",
        "email": f"c{contact_id}@example.com",
        "phone": None,
        "is_active": active,
        "version": version,
        "created_at": "2026-11-26T10:00:00Z",
        "updated_at": None,
    }
    now = datetime.now(UTC)
    event = build_event(
        topic=topic,
        key=str(contact_id),
        event_type=EVENT_TYPES[topic],
        source="lkms101-contacts",
        occurred_at=now,
        data={
            "contact_id": contact_id,
            "contact_name": snapshot["name"],
            "contact_email": snapshot["email"],
            "timestamp": now.isoformat(),
            "contact": snapshot,
            **({"changed_fields": ["name"]} if topic == CONTACT_UPDATED_TOPIC else {}),
        },
    )
    return event.event_id, event.payload


# === FIXTURES ===
@pytest.fixture(scope="module")
def consumer_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "orders_consumer")
    database.create()
    yield database
    database.drop()


@pytest.fixture(scope="module")
def consumer_settings(
    consumer_database: TestDatabase, broker: LocalBroker, dev_pki: DevPki
) -> Settings:
    return make_settings(consumer_database, broker, "127.0.0.1:1", dev_pki)


@pytest.fixture(scope="module")
async def consumer_db(consumer_settings: Settings) -> AsyncIterator[Database]:
    database = Database(consumer_settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def consumer(
    consumer_settings: Settings, consumer_db: Database
) -> AsyncIterator[IdempotentConsumer]:
    """The orders service's contact events consumer, as the lifespan creates it."""
    await ensure_topics(
        consumer_settings, [*EVENT_TYPES, consumer_settings.kafka_dlq_topic], partitions=3
    )
    events_consumer = create_contact_events_consumer(consumer_settings, consumer_db)
    await events_consumer.start()
    yield events_consumer
    await events_consumer.stop()


@pytest.fixture(scope="module")
async def producer(broker: LocalBroker) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, acks="all"
    )
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


@pytest.fixture
def contact_id() -> int:
    """A contact id no other test uses."""
    return 100_000 + uuid.uuid4().int % 1_000_000_000


class Events:
    """Publishes contact events and waits until the consumer has dealt with them."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        consumer: IdempotentConsumer,
        db: Database,
        signer: EventSigner,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.db = db
        self.signer = signer  # contacts' key: what the contacts service signs with

    async def send_raw(
        self, topic: str, key: str, value: bytes, *, signer: EventSigner | None = None
    ) -> None:
        """Publish ``value`` signed with ``signer`` (default: contacts' key)."""
        signature = (signer or self.signer).sign(value)
        headers = [(SIGNATURE_HEADER, signature)]
        await self.producer.send_and_wait(topic, key=key.encode(), value=value, headers=headers)

    async def send_unsigned(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(topic, key=key.encode(), value=value)

    async def send(self, topic: str, payload: dict[str, Any]) -> None:
        await self.send_raw(topic, str(payload["contact_id"]), orjson.dumps(payload))

    async def applied(self, *event_ids: str) -> None:
        """Wait until every one of ``event_ids`` is in the inbox (its effect committed)."""
        wanted = {uuid.UUID(event_id) for event_id in event_ids}

        async def check() -> bool:
            async with self.db.transaction() as session:
                found = await session.scalars(
                    select(InboxEvent.event_id).where(InboxEvent.event_id.in_(wanted))
                )
                return set(found) == wanted

        await eventually(check, f"events {sorted(event_ids)} applied")

    async def row(self, contact_id: int) -> tuple[str, bool, bool, int] | None:
        async with self.db.transaction() as session:
            row = await session.get(ContactReadModel, contact_id)
            return None if row is None else (row.name, row.is_active, row.deleted, row.version)


@pytest.fixture
async def events(
    producer: AIOKafkaProducer, consumer: IdempotentConsumer, consumer_db: Database, dev_pki: DevPki
) -> Events:
    return Events(
        producer, consumer, consumer_db, EventSigner.from_file(dev_pki.event_key_file(CONTACTS))
    )


async def dead_letters(
    broker: LocalBroker, settings: Settings, keys: set[str]
) -> dict[str, tuple[ConsumerRecord[bytes, bytes], dict[str, str]]]:
    """The dead-letter records of this test's consumer group with these keys, by key."""

    def wanted(record: ConsumerRecord[bytes, bytes]) -> bool:
        headers = dict(record.headers)
        group = headers.get("x-dlq-consumer-group", b"").decode()
        return group == settings.kafka_consumer_group_id and (record.key or b"").decode() in keys

    records = await read_topic(
        broker.bootstrap_servers, settings.kafka_dlq_topic, wanted, count=len(keys)
    )
    return {
        (record.key or b"").decode(): (
            record,
            {name: value.decode() for name, value in record.headers},
        )
        for record in records
    }


# === READ MODEL APPLICATION ===
async def test_newer_versions_apply_older_ones_do_not(events: Events, contact_id: int) -> None:
    created_id, created = contact_event(CONTACT_CREATED_TOPIC, contact_id, 1)
    v3_id, v3 = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 3, name="Renamed twice")
    v2_id, v2 = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 2, name="Renamed once")
    await events.send(CONTACT_CREATED_TOPIC, created)
    await events.applied(created_id)
    assert await events.row(contact_id) == (f"Contact {contact_id} v1", True, False, 1)

    await events.send(CONTACT_UPDATED_TOPIC, v3)
    await events.send(CONTACT_UPDATED_TOPIC, v2)  # arrives after v3: stale
    await events.applied(v3_id, v2_id)
    assert await events.row(contact_id) == ("Renamed twice", True, False, 3)


async def test_update_before_create_keeps_the_update(events: Events, contact_id: int) -> None:
    update_id, update = contact_event(
        CONTACT_UPDATED_TOPIC, contact_id, 2, name="Updated", active=False
    )
    create_id, create = contact_event(CONTACT_CREATED_TOPIC, contact_id, 1)
    await events.send(CONTACT_UPDATED_TOPIC, update)
    await events.send(CONTACT_CREATED_TOPIC, create)
    await events.applied(update_id, create_id)
    assert await events.row(contact_id) == ("Updated", False, False, 2)


async def test_delete_is_final_and_keeps_the_last_known_name(
    events: Events, contact_id: int
) -> None:
    created_id, created = contact_event(CONTACT_CREATED_TOPIC, contact_id, 1, name="Last Name")
    deleted_id, deleted = contact_event(CONTACT_DELETED_TOPIC, contact_id, 2, name="Last Name")
    late_id, late = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 3, name="Too late")
    await events.send(CONTACT_CREATED_TOPIC, created)
    await events.applied(created_id)
    await events.send(CONTACT_DELETED_TOPIC, deleted)
    await events.applied(deleted_id)
    assert await events.row(contact_id) == ("Last Name", True, True, 2)
    await events.send(CONTACT_UPDATED_TOPIC, late)
    await events.applied(late_id)
    assert await events.row(contact_id) == ("Last Name", True, True, 2)


async def test_the_same_event_delivered_twice_is_applied_once(
    events: Events, consumer: IdempotentConsumer, contact_id: int
) -> None:
    event_id, payload = contact_event(CONTACT_CREATED_TOPIC, contact_id, 1)
    duplicates_before = consumer.status.duplicates
    await events.send(CONTACT_CREATED_TOPIC, payload)
    await events.applied(event_id)
    await events.send(CONTACT_CREATED_TOPIC, payload)

    async def skipped() -> bool:
        return consumer.status.duplicates > duplicates_before

    await eventually(skipped, "the second delivery counted as a duplicate")
    assert consumer.status.duplicates == duplicates_before + 1
    assert await events.row(contact_id) == (f"Contact {contact_id} v1", True, False, 1)
    async with events.db.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(InboxEvent)
            .where(InboxEvent.event_id == uuid.UUID(event_id))
        )
    assert count == 1


# === POISON MESSAGES ===
async def test_poison_messages_go_to_the_dead_letter_topic_and_the_next_event_applies(
    events: Events,
    consumer: IdempotentConsumer,
    consumer_settings: Settings,
    broker: LocalBroker,
    contact_id: int,
) -> None:
    tag = uuid.uuid4().hex[:8]
    # The same key (partition) for everything: the good event waits behind the poison ones.
    key = str(contact_id)
    not_json = b"{this is not json"
    _, no_snapshot = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 2)
    del no_snapshot["contact"]
    _, unknown_type = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 2)
    unknown_type["event_type"] = "ContactMerged"
    await events.send_raw(CONTACT_UPDATED_TOPIC, f"{key}-{tag}-json", not_json)
    await events.send_raw(CONTACT_UPDATED_TOPIC, f"{key}-{tag}-fields", orjson.dumps(no_snapshot))
    await events.send_raw(CONTACT_UPDATED_TOPIC, f"{key}-{tag}-type", orjson.dumps(unknown_type))
    good_id, good = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 5, name="After the poison")
    await events.send(CONTACT_UPDATED_TOPIC, good)

    await events.applied(good_id)
    assert await events.row(contact_id) == ("After the poison", True, False, 5)
    letters = await dead_letters(
        broker,
        consumer_settings,
        {f"{key}-{tag}-json", f"{key}-{tag}-fields", f"{key}-{tag}-type"},
    )
    record, headers = letters[f"{key}-{tag}-json"]
    assert record.value == not_json  # byte for byte, so it can be replayed
    assert headers["x-dlq-reason"] == "invalid-json"
    assert headers["x-dlq-original-topic"] == CONTACT_UPDATED_TOPIC
    _, headers = letters[f"{key}-{tag}-fields"]
    assert "invalid ContactUpdated event: contact: Field required" in headers["x-dlq-error"]
    # Unusable at once: no retries (the handler refuses it with InvalidEventError).
    assert headers["x-dlq-reason"] == "invalid-envelope"
    assert headers["x-dlq-attempts"] == "1"
    _, headers = letters[f"{key}-{tag}-type"]
    assert headers["x-dlq-reason"] == "no-handler"
    assert consumer.running


# === SIGNATURES ===
async def test_unsigned_and_forged_events_are_dead_lettered_and_change_nothing(
    events: Events,
    consumer_settings: Settings,
    broker: LocalBroker,
    dev_pki: DevPki,
    contact_id: int,
) -> None:
    first_id, first = contact_event(CONTACT_CREATED_TOPIC, contact_id, 1, name="Real")
    await events.send(CONTACT_CREATED_TOPIC, first)
    await events.applied(first_id)

    tag = uuid.uuid4().hex[:8]
    key = str(contact_id)
    # The attack: a snapshot with version 999 that would block every real update.
    _, forged = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 999, name="Forged")
    value = orjson.dumps(forged)
    orders_key = EventSigner.from_file(dev_pki.event_key_file(SERVICE))
    await events.send_unsigned(CONTACT_UPDATED_TOPIC, f"{key}-{tag}-unsigned", value)
    await events.send_raw(CONTACT_UPDATED_TOPIC, f"{key}-{tag}-other-key", value, signer=orders_key)
    # contacts' real signature of another value, over the forged bytes
    signature = events.signer.sign(orjson.dumps(first))
    await events.producer.send_and_wait(
        CONTACT_UPDATED_TOPIC,
        key=f"{key}-{tag}-tampered".encode(),
        value=value,
        headers=[(SIGNATURE_HEADER, signature)],
    )
    real_id, real = contact_event(CONTACT_UPDATED_TOPIC, contact_id, 2, name="Real update")
    await events.send(CONTACT_UPDATED_TOPIC, real)

    await events.applied(real_id)
    assert await events.row(contact_id) == ("Real update", True, False, 2)
    letters = await dead_letters(
        broker,
        consumer_settings,
        {f"{key}-{tag}-unsigned", f"{key}-{tag}-other-key", f"{key}-{tag}-tampered"},
    )
    reasons = {name: headers["x-dlq-reason"] for name, (_, headers) in letters.items()}
    assert set(reasons.values()) == {"bad-signature"}
    assert letters[f"{key}-{tag}-unsigned"][1]["x-dlq-error"] == "the event is not signed"
    assert "unknown key" in letters[f"{key}-{tag}-other-key"][1]["x-dlq-error"]
    assert letters[f"{key}-{tag}-tampered"][1]["x-dlq-error"] == "invalid signature"
    assert letters[f"{key}-{tag}-tampered"][0].value == value  # kept byte for byte


# === THROUGH THE SERVICES ===
async def test_contact_changes_reach_orders_through_events(
    client: httpx.AsyncClient, contacts: ContactsService, db: Database
) -> None:
    """
    The app's own consumer (lifespan) and the real contacts service: a new contact appears in
    the read model, a rename shows on its order, a deactivation refuses new orders.
    """
    contact = await contacts.create_contact(name="Ivan Prvý")

    async def in_read_model() -> bool:
        async with db.transaction() as session:
            return await session.get(ContactReadModel, contact["id"]) is not None

    await eventually(in_read_model, "the created contact in the read model")
    created = await client.post(ORDERS_API, json={"contact_id": contact["id"], "lines": [LINE]})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["contact"]["name"] == "Ivan Prvý"

    await contacts.update_contact(contact["id"], name="Ivan Druhý")

    async def renamed() -> bool:
        shown = (await client.get(f"{ORDERS_API}{order['id']}")).json()
        return bool(shown["contact"]["name"] == "Ivan Druhý")

    await eventually(renamed, "the order showing the contact's new name")

    await contacts.update_contact(contact["id"], is_active=False)

    async def inactive() -> bool:
        async with db.transaction() as session:
            row = await session.get(ContactReadModel, contact["id"])
            return row is not None and not row.is_active

    await eventually(inactive, "the deactivation in the read model")
    refused = await client.post(ORDERS_API, json={"contact_id": contact["id"], "lines": [LINE]})
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"Contact {contact['id']} is inactive"}

    await contacts.delete_contact(contact["id"])

    async def deleted() -> bool:
        async with db.transaction() as session:
            row = await session.get(ContactReadModel, contact["id"])
            return row is not None and row.deleted

    await eventually(deleted, "the deletion in the read model")
    kept = (await client.get(f"{ORDERS_API}{order['id']}")).json()
    assert kept["contact"] == {"id": contact["id"], "name": "Ivan Druhý", "email": contact["email"]}
