"""
================================================================
FILE: test_consumer.py
PATH: /libs/lkern-common/tests/test_consumer.py
DESCRIPTION: Idempotent consumer and inbox against a real Tansu broker and a real PostgreSQL
VERSION: v1.3.0
UPDATED: 2026-12-02 13:10:00
================================================================

The library has no Alembic setup of its own, so this module creates the inbox table and a small
test table with ``create_all`` (restricted to those two tables) on a fresh database; the
services test their real migrations. The migration helpers are compared with the model here.
Each test uses its own topics and consumer group on one shared broker.
"""

# === IMPORTS ===
import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from prometheus_client import REGISTRY
from sqlalchemy import String, make_url
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from lkern_common.database import NAMING_CONVENTION, Base, Database
from lkern_common.event_signing import SIGNATURE_HEADER, EventSigner
from lkern_common.kafka.consumer import (
    DeadLetterReason,
    EventHandler,
    IdempotentConsumer,
    InvalidEventError,
    is_database_unavailable,
    parse_envelope,
)
from lkern_common.kafka.dead_letter import message_size
from lkern_common.kafka.inbox import (
    INBOX_TABLE,
    Claim,
    InboxEvent,
    claim_events,
    create_inbox_table_v1,
    drop_inbox_table_v1,
    purge_inbox,
)
from lkern_common.request_context import request_id_var
from lkern_common.settings import ServiceSettings
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.testing import TEST_CLIENT, TestDatabase, eventually, shared_dev_pki

# === CONSTANTS ===
LIB_DIR = Path(__file__).resolve().parents[1]
APPLIED_TABLE = "consumer_test_applied"
WAIT_S = 30.0
ONE_MIB = 1024 * 1024

pytestmark = pytest.mark.timeout(90)


# === TEST MODEL ===
class AppliedEvent(Base):
    """What the test handler writes: one row per application of an event."""

    __tablename__ = APPLIED_TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True))
    topic: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(200))


# === DATABASE ===
async def _create_tables(url: str) -> None:
    engine = create_async_engine(url)
    tables = [Base.metadata.tables[INBOX_TABLE], Base.metadata.tables[APPLIED_TABLE]]
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: Base.metadata.create_all(sync, tables=tables))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with the inbox and the test table, dropped at the end."""
    database = TestDatabase(LIB_DIR, "common_consumer")
    url = database.create(migrate=False)
    asyncio.run(_create_tables(url))
    yield url
    database.drop()


# === HELPERS ===
# The tests' events are published (and signed) by TEST_CLIENT, whose keys the consumers trust.
PUBLISHER = TEST_CLIENT


def make_settings(broker: LocalBroker, database_url: str, **overrides: Any) -> ServiceSettings:
    settings = ServiceSettings(
        **shared_dev_pki().event_settings(PUBLISHER, trusted=[PUBLISHER]),
        service_name="lkern-common-tests",
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_consumer_session_timeout_ms=6000,
        kafka_consumer_heartbeat_interval_ms=1000,
        kafka_fetch_max_wait_ms=50,
        kafka_consumer_max_attempts=3,
        kafka_consumer_retry_backoff_ms=50,
        kafka_consumer_retry_backoff_max_ms=200,
    )
    return settings.model_copy(update=overrides)


def make_event(event_type: str = "ContactCreated", event_id: uuid.UUID | None = None) -> bytes:
    """An event in the L-KERN envelope, as the outbox relay publishes it."""
    return orjson.dumps(
        {
            "event_id": str(event_id or uuid.uuid4()),
            "event_type": event_type,
            "event_version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "lkern-common-tests",
            "contact_id": 1,
        }
    )


def signed(value: bytes | None, signer: EventSigner | None = None) -> list[tuple[str, bytes]]:
    """The signature header of ``value``, as the outbox relay of PUBLISHER adds it."""
    key = signer or EventSigner.from_file(shared_dev_pki().event_key_file(PUBLISHER))
    return [(SIGNATURE_HEADER, key.sign(value or b""))]


def event_id_of(value: bytes) -> uuid.UUID:
    return uuid.UUID(orjson.loads(value)["event_id"])


@dataclass
class Harness:
    """One test's topics, group, database handle and consumers."""

    broker: LocalBroker
    settings: ServiceSettings
    db: Database
    topic: str
    dlq: str
    group: str
    consumers: list[IdempotentConsumer] = field(default_factory=list)
    # event id -> handler attempts (successful or not)
    attempts: dict[uuid.UUID, int] = field(default_factory=dict)

    def consumer(
        self,
        handlers: dict[str, EventHandler] | None = None,
        settings: ServiceSettings | None = None,
        **options: Any,
    ) -> IdempotentConsumer:
        consumer = IdempotentConsumer(
            settings or self.settings,
            self.db,
            topics=[self.topic],
            group_id=self.group,
            handlers=handlers if handlers is not None else {"ContactCreated": self.record},
            dead_letter_topic=self.dlq,
            publishers={self.topic: PUBLISHER},
            **options,
        )
        self.consumers.append(consumer)
        return consumer

    async def record(self, session: AsyncSession, event: dict[str, Any]) -> None:
        """The well-behaved handler: one row per application."""
        event_id = uuid.UUID(event["event_id"])
        self.attempts[event_id] = self.attempts.get(event_id, 0) + 1
        session.add(
            AppliedEvent(
                event_id=event_id,
                topic=self.topic,
                event_type=event["event_type"],
                request_id=request_id_var.get(),
            )
        )

    async def produce(
        self,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        sign: bool = True,
    ) -> None:
        """Publish one message, signed by PUBLISHER unless ``sign`` is false."""
        all_headers = [*(headers or []), *(signed(value) if sign else [])]
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(self.topic, value=value, key=key, headers=all_headers)
        finally:
            await producer.stop()

    async def applied(self) -> list[AppliedEvent]:
        async with self.db.transaction() as session:
            result = await session.scalars(
                sa.select(AppliedEvent)
                .where(AppliedEvent.topic == self.topic)
                .order_by(AppliedEvent.id)
            )
            return list(result)

    async def in_inbox(self, event_id: uuid.UUID) -> bool:
        async with self.db.transaction() as session:
            return await session.get(InboxEvent, event_id) is not None

    async def committed(self) -> int | None:
        """The group's committed offset of partition 0 (None when nothing was committed)."""
        probe = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
        )
        await probe.start()
        try:
            offset: int | None = await probe.committed(TopicPartition(self.topic, 0))
            return offset
        finally:
            await probe.stop()

    async def dead_letters(self, expected: int, wait_s: float = WAIT_S) -> list[Any]:
        """Read the dead-letter topic from the start until ``expected`` messages (or ``wait_s``)."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await reader.start()
        records: list[Any] = []
        try:
            tp = TopicPartition(self.dlq, 0)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            deadline = asyncio.get_running_loop().time() + wait_s
            while len(records) < expected and asyncio.get_running_loop().time() < deadline:
                batch = await reader.getmany(tp, timeout_ms=200)
                records.extend(batch.get(tp, []))
        finally:
            await reader.stop()
        return records


def headers_of(record: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


@pytest.fixture
async def harness(kafka_broker: LocalBroker, database_url: str) -> AsyncIterator[Harness]:
    suffix = uuid.uuid4().hex[:10]
    topic, dlq = f"test.consumer.{suffix}", f"test.consumer.{suffix}.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(dlq, 1, 1)])
    finally:
        await admin.close()
    settings = make_settings(kafka_broker, database_url)
    db = Database(settings)
    harness = Harness(kafka_broker, settings, db, topic, dlq, f"test-group-{suffix}")
    yield harness
    for consumer in harness.consumers:
        await consumer.stop()
    await db.dispose()


# === PURE LOGIC ===
def test_parse_envelope_accepts_and_refuses() -> None:
    event_id = uuid.uuid4()
    envelope = parse_envelope(make_event("ContactUpdated", event_id))
    assert (envelope.event_id, envelope.event_type) == (event_id, "ContactUpdated")
    for value, reason in [
        (None, "invalid-json"),
        (b"{nope", "invalid-json"),
        (b"[1, 2]", "invalid-envelope"),
        (b'{"event_type": "X"}', "invalid-envelope"),
        (b'{"event_id": "not-a-uuid", "event_type": "X"}', "invalid-envelope"),
        (orjson.dumps({"event_id": str(event_id)}), "invalid-envelope"),
        (orjson.dumps({"event_id": str(event_id), "event_type": " "}), "invalid-envelope"),
    ]:
        with pytest.raises(ValueError) as caught:
            parse_envelope(value)
        assert getattr(caught.value, "reason", None) == reason, value


def test_database_errors_are_told_from_handler_errors() -> None:
    invalidated = sa.exc.DBAPIError(
        "SELECT 1", {}, Exception("closed"), connection_invalidated=True
    )
    assert is_database_unavailable(invalidated)
    assert is_database_unavailable(sa.exc.TimeoutError("pool exhausted"))

    class CannotConnectNow(Exception):
        sqlstate = "57P03"

    try:
        try:
            raise CannotConnectNow("the database system is starting up")
        except CannotConnectNow as inner:
            raise sa.exc.InternalError("INSERT", {}, inner) from inner
    except sa.exc.InternalError as wrapped:
        assert is_database_unavailable(wrapped)
    assert not is_database_unavailable(ValueError("bad event"))
    assert not is_database_unavailable(sa.exc.IntegrityError("INSERT", {}, Exception("dup")))


# === INBOX ===
def test_migration_helpers_create_the_model_table_and_drop_it() -> None:
    database = TestDatabase(LIB_DIR, "common_inbox_migration")
    url = database.create(migrate=False)

    def migrate(connection: Connection) -> tuple[list[Any], list[str]]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        operations = Operations(context)
        create_inbox_table_v1(operations)
        metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
        Base.metadata.tables[INBOX_TABLE].to_metadata(metadata)
        differences = compare_metadata(context, metadata)
        drop_inbox_table_v1(operations)
        return differences, sa.inspect(connection).get_table_names()

    async def run() -> tuple[list[Any], list[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    try:
        differences, tables_after_drop = asyncio.run(run())
    finally:
        database.drop()
    assert differences == []
    assert tables_after_drop == []


async def test_purge_inbox_deletes_only_old_rows(
    database_url: str, kafka_broker: LocalBroker
) -> None:
    db = Database(make_settings(kafka_broker, database_url))
    old = [uuid.uuid4() for _ in range(3)]
    recent = uuid.uuid4()
    long_ago = datetime.now(UTC) - timedelta(days=40)
    try:
        async with db.transaction() as session:
            for index, event_id in enumerate([*old, recent]):
                session.add(
                    InboxEvent(
                        event_id=event_id,
                        topic="test.purge",
                        event_type="ContactCreated",
                        kafka_partition=0,
                        kafka_offset=index,
                        processed_at=long_ago if event_id in old else datetime.now(UTC),
                    )
                )
        assert await purge_inbox(db, older_than_days=30, batch_size=2) == 3
        async with db.transaction() as session:
            left = await session.scalars(
                sa.select(InboxEvent.event_id).where(InboxEvent.topic == "test.purge")
            )
            assert list(left) == [recent]
        with pytest.raises(ValueError):
            await purge_inbox(db, older_than_days=0)
    finally:
        await db.dispose()


async def test_claim_returns_only_events_not_claimed_before(
    database_url: str, kafka_broker: LocalBroker
) -> None:
    db = Database(make_settings(kafka_broker, database_url))
    seen, new, twice = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def claims(*event_ids: uuid.UUID) -> list[Claim]:
        return [Claim(event_id, "test.claim", "ContactCreated", 0, 7) for event_id in event_ids]

    try:
        async with db.transaction() as session:
            assert await claim_events(session, claims(seen)) == {seen}
        async with db.transaction() as session:
            # One already applied, one new, one twice in the same batch (claimed once).
            assert await claim_events(session, claims(seen, new, twice, twice)) == {new, twice}
        async with db.transaction() as session:
            stored = await session.get(InboxEvent, new)
        assert stored is not None
        assert (stored.topic, stored.event_type, stored.kafka_offset) == (
            "test.claim",
            "ContactCreated",
            7,
        )
    finally:
        await db.dispose()


# === CONSUMER ===
async def test_event_applied_once_and_offset_committed(harness: Harness) -> None:
    first = make_event()
    await harness.produce(first, key=b"1")
    consumer = harness.consumer()
    await consumer.start()

    async def first_applied() -> bool:
        return consumer.status.processed == 1 and len(await harness.applied()) == 1

    await eventually(first_applied, "the event is applied")
    await eventually(lambda: _equals(harness.committed(), 1), "offset 1 is committed")
    (row,) = await harness.applied()
    assert row.event_id == event_id_of(first)
    assert row.request_id == str(event_id_of(first))  # no x-request-id header: the event id
    assert await harness.in_inbox(event_id_of(first))
    ready = await consumer.readiness_check()()
    assert ready.ok
    assert ready.details["processed"] == 1
    assert ready.details["state"] == "running"
    assert ready.details["assigned_partitions"] == [f"{harness.topic}[0]"]
    await consumer.stop()
    assert consumer.status.state == "stopped"
    assert not (await consumer.readiness_check()()).ok

    # A new member of the group resumes after the committed offset: only the second event.
    second = make_event()
    await harness.produce(second, key=b"1")
    successor = harness.consumer()
    await successor.start()

    async def second_applied() -> bool:
        return successor.status.processed == 1

    await eventually(second_applied, "the second event is applied by the new member")
    assert [row.event_id for row in await harness.applied()] == [
        event_id_of(first),
        event_id_of(second),
    ]
    assert successor.status.duplicates == 0
    assert harness.attempts == {event_id_of(first): 1, event_id_of(second): 1}


async def test_same_event_delivered_twice_is_applied_once(harness: Harness) -> None:
    event_id = uuid.uuid4()
    duplicate = make_event(event_id=event_id)
    other = make_event()
    await harness.produce(duplicate)
    await harness.produce(make_event(event_id=event_id))  # same id, re-serialised
    await harness.produce(other)
    consumer = harness.consumer()
    await consumer.start()

    async def all_seen() -> bool:
        return consumer.status.processed + consumer.status.duplicates == 3

    await eventually(all_seen, "three messages are handled")
    assert (consumer.status.processed, consumer.status.duplicates) == (2, 1)
    assert [row.event_id for row in await harness.applied()] == [event_id, event_id_of(other)]
    assert harness.attempts == {event_id: 1, event_id_of(other): 1}
    await eventually(lambda: _equals(harness.committed(), 3), "offset 3 is committed")


def metric(name: str, **labels: str) -> float:
    """A sample of this process's metrics (no multiprocess folder in tests), 0 when absent."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consumer_events(harness: Harness, outcome: str) -> float:
    labels = {"group": harness.group, "topic": harness.topic, "outcome": outcome}
    return metric("lkern_consumer_events_total", **labels)


async def test_handler_failing_twice_then_succeeding_is_applied_once(harness: Harness) -> None:
    async def flaky(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)  # written, then rolled back when we raise
        if harness.attempts[uuid.UUID(event["event_id"])] <= 2:
            raise RuntimeError("temporary failure")

    value = make_event()
    await harness.produce(value)
    consumer = harness.consumer({"ContactCreated": flaky})
    await consumer.start()

    async def applied() -> bool:
        return consumer.status.processed == 1

    await eventually(applied, "the event is applied on the third attempt")
    assert harness.attempts == {event_id_of(value): 3}
    assert [row.event_id for row in await harness.applied()] == [event_id_of(value)]
    assert consumer.status.retries == 2
    assert consumer.status.dead_lettered == 0
    await eventually(lambda: _equals(harness.committed(), 1), "offset 1 is committed")
    assert await harness.dead_letters(expected=1, wait_s=1.0) == []
    # The metrics (docs/observability.md) tell the same.
    assert metric("lkern_consumer_retries_total", group=harness.group) == 2
    assert consumer_events(harness, "applied") == 1
    assert consumer_events(harness, "dead_lettered") == 0
    assert metric("lkern_event_end_to_end_seconds_count", topic=harness.topic) == 1
    assert metric("lkern_consumer_batch_size_sum", group=harness.group) == 1
    lag = {"group": harness.group, "topic": harness.topic, "partition": "0"}
    await eventually(lambda: metric("lkern_consumer_lag_messages", **lag) == 0, "no lag")


async def test_failing_handler_dead_letters_and_next_event_is_applied(harness: Harness) -> None:
    async def picky(session: AsyncSession, event: dict[str, Any]) -> None:
        if event.get("contact_id") == 666:
            raise ValueError("contact 666 is cursed")
        await harness.record(session, event)

    poison = orjson.dumps({**orjson.loads(make_event()), "contact_id": 666})
    good = make_event()
    await harness.produce(poison, key=b"666", headers=[("x-request-id", b"req-poison-1")])
    await harness.produce(good, key=b"1", headers=[("x-request-id", b"req-good-1")])
    consumer = harness.consumer({"ContactCreated": picky})
    await consumer.start()

    async def both_handled() -> bool:
        return consumer.status.dead_lettered == 1 and consumer.status.processed == 1

    await eventually(both_handled, "the poison message is dead-lettered and the next applied")
    (row,) = await harness.applied()
    assert row.event_id == event_id_of(good)
    assert row.request_id == "req-good-1"
    assert not await harness.in_inbox(event_id_of(poison))  # can be replayed later
    (dead,) = await harness.dead_letters(expected=1)
    assert dead.value == poison
    assert dead.key == b"666"
    headers = headers_of(dead)
    assert headers["x-dlq-reason"] == "handler-failed"
    assert headers["x-dlq-error"] == "ValueError: contact 666 is cursed"
    assert headers["x-dlq-attempts"] == "3"
    assert headers["x-dlq-original-topic"] == harness.topic
    assert headers["x-dlq-original-partition"] == "0"
    assert headers["x-dlq-original-offset"] == "0"
    assert headers["x-dlq-consumer-group"] == harness.group
    assert headers["x-request-id"] == "req-poison-1"
    assert consumer.status.last_error is not None
    assert "cursed" in consumer.status.last_error
    await eventually(lambda: _equals(harness.committed(), 2), "offset 2 is committed")
    assert consumer_events(harness, "dead_lettered") == 1
    assert consumer_events(harness, "applied") == 1
    assert metric("lkern_consumer_retries_total", group=harness.group) == 2
    assert metric("lkern_consumer_last_progress_timestamp_seconds", group=harness.group) > 0


async def test_invalid_messages_are_dead_lettered_at_once(harness: Harness) -> None:
    async def refuse(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)  # rolled back with the refusal
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "contact snapshot missing")

    invalid = [
        (b"{this is not json", "invalid-json"),
        (b'{"event_type": "ContactCreated", "contact_id": 1}', "invalid-envelope"),
        (b'{"event_id": "42", "event_type": "ContactCreated"}', "invalid-envelope"),
        (b'["ContactCreated"]', "invalid-envelope"),
        (make_event("ContactMerged"), "no-handler"),
        (make_event("ContactBroken"), "invalid-envelope"),  # refused by its handler
    ]
    for value, _ in invalid:
        await harness.produce(value)
    good = make_event()
    await harness.produce(good)
    consumer = harness.consumer({"ContactCreated": harness.record, "ContactBroken": refuse})
    await consumer.start()

    async def all_handled() -> bool:
        return consumer.status.dead_lettered == len(invalid) and consumer.status.processed == 1

    await eventually(all_handled, "the invalid messages are dead-lettered and the next applied")
    assert consumer.status.retries == 0  # refused at once, never retried
    broken = event_id_of(invalid[-1][0])
    assert harness.attempts == {broken: 1, event_id_of(good): 1}
    assert [row.event_id for row in await harness.applied()] == [event_id_of(good)]
    assert not await harness.in_inbox(broken)
    dead = await harness.dead_letters(expected=len(invalid))
    assert [record.value for record in dead] == [value for value, _ in invalid]
    assert [headers_of(record)["x-dlq-reason"] for record in dead] == [r for _, r in invalid]
    assert [headers_of(record)["x-dlq-attempts"] for record in dead] == ["0"] * 5 + ["1"]
    assert "not valid JSON" in headers_of(dead[0])["x-dlq-error"]
    assert "event_id is missing" in headers_of(dead[1])["x-dlq-error"]
    assert "ContactMerged" in headers_of(dead[4])["x-dlq-error"]
    assert headers_of(dead[5])["x-dlq-error"] == "contact snapshot missing"
    await eventually(lambda: _equals(harness.committed(), len(invalid) + 1), "all committed")


async def test_unsigned_and_forged_messages_are_dead_lettered_as_bad_signature(
    harness: Harness, dev_pki: Any
) -> None:
    unsigned, foreign, tampered, good = make_event(), make_event(), make_event(), make_event()
    stranger = EventSigner.from_file(dev_pki.event_key_file("lkms102-orders"))
    await harness.produce(unsigned, sign=False)
    await harness.produce(foreign, headers=signed(foreign, stranger), sign=False)
    await harness.produce(tampered, headers=signed(good), sign=False)  # another value's
    await harness.produce(b"{not even json", headers=[(SIGNATURE_HEADER, b"x.y.z")], sign=False)
    await harness.produce(good)
    consumer = harness.consumer()
    await consumer.start()

    async def all_handled() -> bool:
        return consumer.status.dead_lettered == 4 and consumer.status.processed == 1

    await eventually(all_handled, "the bad messages are dead-lettered and the signed one applied")
    assert [row.event_id for row in await harness.applied()] == [event_id_of(good)]
    assert harness.attempts == {event_id_of(good): 1}  # no handler ran for the others
    dead = await harness.dead_letters(expected=4)
    assert [headers_of(record)["x-dlq-reason"] for record in dead] == ["bad-signature"] * 4
    assert [headers_of(record)["x-dlq-error"] for record in dead] == [
        "the event is not signed",
        f"unknown key {stranger.key_id!r} for {PUBLISHER}",
        "invalid signature",
        "invalid signature",
    ]


def test_a_consumer_needs_the_publisher_and_its_keys_for_every_topic(
    harness: Harness,
) -> None:
    options: dict[str, Any] = {
        "topics": ["a.topic"],
        "group_id": "g",
        "handlers": {"ContactCreated": harness.record},
        "dead_letter_topic": "a.dlq",
    }
    with pytest.raises(ValueError, match="No publisher given for topic"):
        IdempotentConsumer(harness.settings, harness.db, publishers={}, **options)
    with pytest.raises(ValueError, match="EVENT_TRUSTED_JWKS has no public keys of someone"):
        IdempotentConsumer(
            harness.settings, harness.db, publishers={"a.topic": "someone"}, **options
        )


async def test_offset_not_committed_when_stopped_mid_retry(harness: Harness) -> None:
    async def failing(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)
        raise RuntimeError("downstream not ready")

    value = make_event()
    await harness.produce(value)
    patient = make_settings(
        harness.broker,
        harness.settings.database_url,
        kafka_consumer_max_attempts=1000,
        kafka_consumer_retry_backoff_ms=100,
        kafka_consumer_retry_backoff_max_ms=100,
    )
    consumer = harness.consumer({"ContactCreated": failing}, settings=patient)
    await consumer.start()

    async def retrying() -> bool:
        return consumer.status.retries >= 2

    await eventually(retrying, "the handler is being retried")
    await consumer.stop()
    assert await harness.applied() == []
    assert await harness.committed() is None
    assert consumer.status.dead_lettered == 0

    successor = harness.consumer()
    await successor.start()

    async def applied() -> bool:
        return successor.status.processed == 1

    await eventually(applied, "the uncommitted message is delivered again and applied")
    assert [row.event_id for row in await harness.applied()] == [event_id_of(value)]
    await eventually(lambda: _equals(harness.committed(), 1), "offset 1 is committed")
    assert await harness.dead_letters(expected=1, wait_s=1.0) == []


async def test_cancelled_mid_handler_rolls_back_and_commits_nothing(harness: Harness) -> None:
    entered = asyncio.Event()

    async def hanging(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)
        entered.set()
        await asyncio.sleep(3600)  # e.g. a call that never answers

    await harness.produce(make_event())
    consumer = harness.consumer({"ContactCreated": hanging})
    task = asyncio.create_task(consumer.run())  # run() is also usable as a task of one's own
    await asyncio.wait_for(entered.wait(), WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT_S)  # cancellation is not retried like an error
    assert harness.attempts and set(harness.attempts.values()) == {1}
    assert consumer.status.state == "stopped"
    assert await harness.applied() == []
    assert await harness.committed() is None


async def test_unreachable_dead_letter_topic_keeps_the_message(harness: Harness) -> None:
    async def picky(session: AsyncSession, event: dict[str, Any]) -> None:
        if event.get("contact_id") == 666:
            raise ValueError("contact 666 is cursed")
        await harness.record(session, event)

    poison = orjson.dumps({**orjson.loads(make_event()), "contact_id": 666})
    good = make_event()
    await harness.produce(poison)
    await harness.produce(good)
    # The dead-letter producer talks to a port where no broker listens.
    blocked = harness.consumer(
        {"ContactCreated": picky},
        producer_options={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
    )
    await blocked.start()

    async def waiting() -> bool:
        return blocked.status.waiting_for == "dead-letter topic"

    await eventually(waiting, "the consumer retries the dead-letter publish")
    assert blocked.status.dead_lettered == 0
    assert await harness.applied() == []  # the next message waits: order is kept
    await blocked.stop()
    assert await harness.committed() is None

    successor = harness.consumer({"ContactCreated": picky})
    await successor.start()

    async def both_handled() -> bool:
        return successor.status.dead_lettered == 1 and successor.status.processed == 1

    await eventually(both_handled, "the poison message is dead-lettered by the next member")
    (dead,) = await harness.dead_letters(expected=1)
    assert dead.value == poison
    assert [row.event_id for row in await harness.applied()] == [event_id_of(good)]
    await eventually(lambda: _equals(harness.committed(), 2), "offset 2 is committed")


async def test_database_outage_is_waited_out_without_dead_letter(harness: Harness) -> None:
    url = make_url(harness.settings.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = make_settings(
        harness.broker,
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
    )
    proxied_db = Database(proxied)
    try:
        consumer = IdempotentConsumer(
            proxied,
            proxied_db,
            topics=[harness.topic],
            group_id=harness.group,
            handlers={"ContactCreated": harness.record},
            dead_letter_topic=harness.dlq,
            publishers={harness.topic: PUBLISHER},
        )
        harness.consumers.append(consumer)
        first, second = make_event(), make_event()
        await harness.produce(first)
        await consumer.start()

        async def first_applied() -> bool:
            return consumer.status.processed == 1

        await eventually(first_applied, "the first event is applied")
        await proxy.stop()  # the database is gone: pooled connections die, new ones are refused
        await harness.produce(second)

        async def waiting() -> bool:
            return consumer.status.waiting_for == "database"

        await eventually(waiting, "the consumer waits for the database")
        assert consumer.status.dead_lettered == 0
        assert consumer.status.retries == 0  # an outage is not a handler failure
        await proxy.start()

        async def second_applied() -> bool:
            return consumer.status.processed == 2

        await eventually(second_applied, "the second event is applied once the database is back")
        assert [row.event_id for row in await harness.applied()] == [
            event_id_of(first),
            event_id_of(second),
        ]
        assert consumer.status.dead_lettered == 0
        assert consumer.status.waiting_for is None
        await eventually(lambda: _equals(harness.committed(), 2), "offset 2 is committed")
        assert await harness.dead_letters(expected=1, wait_s=1.0) == []
    finally:
        await harness.consumers[-1].stop()
        await proxy.stop()
        await proxied_db.dispose()


async def test_consumer_started_before_the_broker_connects_when_it_comes(
    harness: Harness, tmp_path: Path
) -> None:
    port = free_port()
    late = make_settings(
        harness.broker, harness.settings.database_url, kafka_bootstrap_servers=f"127.0.0.1:{port}"
    )
    consumer = harness.consumer(settings=late)
    await consumer.start()

    async def waiting() -> bool:
        return consumer.status.waiting_for == "broker" and consumer.status.state == "connecting"

    await eventually(waiting, "the consumer keeps trying to reach the broker")
    assert consumer.running
    with LocalBroker(port=port, log_file=tmp_path / "tansu.log") as broker:
        value = make_event()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(harness.topic, value, headers=signed(value))
        finally:
            await producer.stop()

        async def applied() -> bool:
            return consumer.status.processed == 1

        await eventually(applied, "the event is applied once the broker is up")
        assert [row.event_id for row in await harness.applied()] == [event_id_of(value)]
        assert consumer.status.state == "running"
        await consumer.stop()
    assert consumer.status.state == "stopped"


# === SUPPORT ===
async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


class TcpProxy:
    """A TCP forwarder to PostgreSQL that can be cut (connections aborted, port closed)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                target.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream_writer))


async def test_consumer_creates_its_topics_with_the_configured_partitions(
    kafka_broker: LocalBroker, database_url: str
) -> None:
    """A consumer that starts before any producer creates its topics (and the DLQ) itself."""
    suffix = uuid.uuid4().hex[:10]
    topic, dlq = f"test.fresh.{suffix}", f"test.fresh.{suffix}.dlq"
    settings = make_settings(kafka_broker, database_url, kafka_topic_partitions=3)
    db = Database(settings)

    async def ignore(session: AsyncSession, event: dict[str, Any]) -> None:
        del session, event

    consumer = IdempotentConsumer(
        settings,
        db,
        topics=[topic],
        group_id=f"g-{suffix}",
        handlers={"ContactCreated": ignore},
        dead_letter_topic=dlq,
        publishers={topic: PUBLISHER},
    )
    await consumer.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:

        async def created() -> bool:
            return {topic, dlq} <= set(await admin.list_topics())

        await eventually(created, "the consumer created its topics")
        described = await admin.describe_topics([topic])
        assert len(described[0]["partitions"]) == 3
    finally:
        await admin.close()
        await consumer.stop()
        await db.dispose()


# === BATCHES ===
async def _produce_all(harness: Harness, values: list[bytes]) -> None:
    """Produce ``values`` in order with one producer (so that one fetch can get them all)."""
    producer = AIOKafkaProducer(bootstrap_servers=harness.broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send(harness.topic, value=value, key=b"1", headers=signed(value))
        await producer.flush()
    finally:
        await producer.stop()


async def _inbox_transactions(harness: Harness) -> int:
    """How many transactions wrote the topic's inbox rows (rows of one share its now())."""
    async with harness.db.transaction() as session:
        times = await session.scalars(
            sa.select(InboxEvent.processed_at).where(InboxEvent.topic == harness.topic)
        )
        return len(set(times))


async def test_waiting_events_are_applied_in_few_transactions(harness: Harness) -> None:
    values = [make_event() for _ in range(60)]
    await _produce_all(harness, values)
    consumer = harness.consumer()
    await consumer.start()

    async def all_applied() -> bool:
        return consumer.status.processed == len(values)

    await eventually(all_applied, "the backlog is applied")
    rows = await harness.applied()
    assert [row.event_id for row in rows] == [event_id_of(value) for value in values]
    assert [row.request_id for row in rows] == [str(event_id_of(value)) for value in values]
    assert set(harness.attempts.values()) == {1}
    assert await _inbox_transactions(harness) <= len(values) // 4  # one per message before
    await eventually(lambda: _equals(harness.committed(), len(values)), "all committed")


async def test_failing_handler_inside_a_batch_keeps_its_attempts_and_the_others(
    harness: Harness,
) -> None:
    values = [make_event() for _ in range(5)]
    flaky = event_id_of(values[2])

    async def flaky_third(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)  # rolled back when we raise
        if uuid.UUID(event["event_id"]) == flaky and harness.attempts[flaky] <= 2:
            raise RuntimeError("temporary failure")

    await _produce_all(harness, values)
    consumer = harness.consumer({"ContactCreated": flaky_third})
    await consumer.start()

    async def all_applied() -> bool:
        return consumer.status.processed == len(values)

    await eventually(all_applied, "every event is applied")
    # The try inside the batch counted as the first of its three attempts.
    assert harness.attempts[flaky] == 3
    assert consumer.status.retries == 2
    assert consumer.status.dead_lettered == 0
    assert [row.event_id for row in await harness.applied()] == [
        event_id_of(value) for value in values
    ]
    await eventually(lambda: _equals(harness.committed(), len(values)), "all committed")


async def test_refused_event_inside_a_batch_is_dead_lettered_after_one_attempt(
    harness: Harness,
) -> None:
    async def refuse(session: AsyncSession, event: dict[str, Any]) -> None:
        await harness.record(session, event)
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "contact snapshot missing")

    values = [make_event(), make_event("ContactBroken"), make_event()]
    await _produce_all(harness, values)
    consumer = harness.consumer({"ContactCreated": harness.record, "ContactBroken": refuse})
    await consumer.start()

    async def all_handled() -> bool:
        return consumer.status.dead_lettered == 1 and consumer.status.processed == 2

    await eventually(all_handled, "the refused event is dead-lettered, the others applied")
    assert harness.attempts[event_id_of(values[1])] == 1  # refused once, never run again
    assert consumer.status.retries == 0
    assert [row.event_id for row in await harness.applied()] == [
        event_id_of(values[0]),
        event_id_of(values[2]),
    ]
    (dead,) = await harness.dead_letters(expected=1)
    assert dead.value == values[1]
    assert headers_of(dead)["x-dlq-attempts"] == "1"
    await eventually(lambda: _equals(harness.committed(), len(values)), "all committed")


# === DEAD LETTERS THAT DO NOT FIT, STALLS ===
async def test_poison_message_just_under_one_mib_is_dead_lettered_cut_and_the_next_applied(
    harness: Harness,
) -> None:
    # A value the producer (1 MiB request limit) still takes; its dead-letter copy, with the
    # x-dlq-* headers added, would not fit: before, its publish failed for ever.
    base = orjson.loads(make_event("ContactBroken"))
    headers = [("x-request-id", b"req-big")]
    probe = orjson.dumps({**base, "pad": ""})
    overhead = message_size(b"7", probe, [*headers, *signed(probe)])
    oversized = orjson.dumps({**base, "pad": "p" * (ONE_MIB - 64 - overhead)})
    assert ONE_MIB - 128 < message_size(b"7", oversized, [*headers, *signed(oversized)]) < ONE_MIB
    good = make_event()
    await harness.produce(oversized, key=b"7", headers=headers)
    await harness.produce(good)
    consumer = harness.consumer()
    await consumer.start()

    async def both_handled() -> bool:
        return consumer.status.dead_lettered == 1 and consumer.status.processed == 1

    await eventually(both_handled, "the oversized message is dead-lettered, the next applied")
    (dead,) = await harness.dead_letters(expected=1)
    dlq = headers_of(dead)
    assert dlq["x-dlq-form"] == "cut"
    assert dlq["x-dlq-reason"] == "no-handler"
    assert (dlq["x-dlq-original-topic"], dlq["x-dlq-original-offset"]) == (
        harness.topic,
        "0",
    )
    assert dlq["x-dlq-original-value-bytes"] == str(len(oversized))
    assert dlq["x-request-id"] == "req-big" and dead.key == b"7"
    assert oversized.startswith(dead.value) and len(dead.value) < len(oversized)
    assert consumer.status.dead_letters_cut == 1
    assert [row.event_id for row in await harness.applied()] == [event_id_of(good)]
    await eventually(lambda: _equals(harness.committed(), 2), "both offsets are committed")
    assert (await consumer.readiness_check()()).ok


async def test_a_consumer_that_cannot_progress_with_lag_fails_its_readiness_check(
    harness: Harness,
) -> None:
    await harness.produce(b"{not json")
    await harness.produce(make_event())
    # The dead-letter producer talks to a port where no broker listens: the consumer waits.
    stuck = harness.consumer(
        settings=harness.settings.model_copy(update={"kafka_consumer_stall_seconds": 1.0}),
        producer_options={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
    )
    await stuck.start()
    check = stuck.readiness_check()

    async def stalled() -> bool:
        return not (await check()).ok

    await eventually(stalled, "the readiness check reports the stall")
    details = (await check()).details
    assert details["lag"] == 2
    assert details["seconds_without_progress"] >= 1.0
    assert "waiting for the dead-letter topic" in details["stalled"]
    assert details["state"] == "running"
    await stuck.stop()

    healthy = harness.consumer(
        settings=harness.settings.model_copy(update={"kafka_consumer_stall_seconds": 1.0})
    )
    await healthy.start()

    async def caught_up() -> bool:
        return healthy.status.processed == 1 and healthy.status.lag == 0

    await eventually(caught_up, "the next member handles both and has no lag")
    await asyncio.sleep(1.5)  # longer than the stall threshold: idle is not stalled
    assert (await healthy.readiness_check()()).ok
