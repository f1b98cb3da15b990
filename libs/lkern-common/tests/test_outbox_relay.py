"""
================================================================
FILE: test_outbox_relay.py
PATH: /libs/lkern-common/tests/test_outbox_relay.py
DESCRIPTION: Transactional outbox and its relay against a real PostgreSQL and a real Tansu broker
VERSION: v1.2.0
UPDATED: 2026-12-02 06:40:00
================================================================

The library has no Alembic setup of its own: a fresh database gets the outbox table from the
versioned migration helper (as a service's migration creates it), and the helper is compared
with the model. Each test uses its own topic; consumers have their own group and start at the
earliest offset; events are counted by ``event_id``.
"""

# === IMPORTS ===
import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from prometheus_client import REGISTRY
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lkern_common.database import NAMING_CONVENTION, Base, Database
from lkern_common.event_signing import SIGNATURE_HEADER, EventSigningError, EventVerifier
from lkern_common.events import build_event
from lkern_common.kafka.topics import ensure_topics
from lkern_common.outbox import (
    OUTBOX_TABLE,
    OutboxEvent,
    OutboxRelay,
    RelayRole,
    add_envelope,
    create_outbox_table_v1,
    drop_outbox_table_v1,
    outbox_backlog,
)
from lkern_common.outbox.relay import asyncpg_dsn
from lkern_common.request_context import request_id_var
from lkern_common.settings import ServiceSettings
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.testing import (
    TEST_CLIENT,
    CollectedEvent,
    EventCollector,
    TestDatabase,
    eventually,
    shared_dev_pki,
)

# === CONSTANTS ===
LIB_DIR = Path(__file__).resolve().parents[1]
WAIT_S = 60.0

pytestmark = pytest.mark.timeout(120)


# === DATABASE ===
def _migrate(url: str, upgrade: bool) -> None:
    def run_helper(connection: Connection) -> None:
        operations = Operations(MigrationContext.configure(connection))
        if upgrade:
            create_outbox_table_v1(operations)
        else:
            drop_outbox_table_v1(operations)

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(run_helper)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database with the outbox table made by the migration helper."""
    database = TestDatabase(LIB_DIR, "common_outbox")
    url = database.create(migrate=False)
    _migrate(url, upgrade=True)
    yield url
    database.drop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(ServiceSettings(database_url=database_url))
    yield database
    async with database.engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {OUTBOX_TABLE} RESTART IDENTITY"))
    await database.dispose()


# === HELPERS ===
def make_settings(
    broker: LocalBroker | None, database_url: str, **overrides: Any
) -> ServiceSettings:
    """Relay settings for tests: NOTIFY or nothing (no poll within a test), quick retries."""
    settings = ServiceSettings(
        **shared_dev_pki().event_settings(TEST_CLIENT),  # the relay signs as TEST_CLIENT
        service_name="lkern-common-tests",
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=(
            broker.bootstrap_servers if broker else f"127.0.0.1:{free_port()}"
        ),
        kafka_request_timeout_ms=3000,
        outbox_poll_interval_seconds=3600.0,
        outbox_cleanup_interval_seconds=3600.0,
        outbox_backlog_log_interval_seconds=3600.0,
        outbox_retry_backoff_seconds=0.2,
        outbox_retry_backoff_max_seconds=1.0,
        outbox_standby_retry_seconds=0.2,
    )
    return settings.model_copy(update=overrides)


def new_topic() -> str:
    return f"test.outbox.{uuid.uuid4().hex[:12]}"


async def write_events(
    db: Database, topic: str, keys: list[str], per_key: int, *, fail: bool = False
) -> list[str]:
    """Write ``per_key`` events for each key (interleaved) in one transaction; their ids."""
    event_ids = []
    async with db.transaction() as session:
        for number in range(per_key):
            for key in keys:
                event = build_event(
                    topic=topic,
                    key=key,
                    event_type="TestHappened",
                    source="lkern-common-tests",
                    data={"key": key, "n": number},
                )
                await add_envelope(session, event)
                event_ids.append(event.event_id)
        if fail:
            raise RuntimeError("roll back")
    return event_ids


def ids_of(events: list[CollectedEvent]) -> list[str]:
    return [event.event_id for event in events]


async def unsent(db: Database) -> int:
    return (await outbox_backlog(db)).pending


# === MIGRATION HELPERS ===
def test_migration_helpers_create_what_the_model_describes() -> None:
    database = TestDatabase(LIB_DIR, "common_outbox_mig")
    url = database.create(migrate=False)
    try:
        _migrate(url, upgrade=True)

        def compare(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
            Base.metadata.tables[OUTBOX_TABLE].to_metadata(metadata)
            return list(compare_metadata(context, metadata))

        async def inspect_database() -> tuple[list[Any], int, int]:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as connection:
                    differences = await connection.run_sync(compare)
                    triggers = await connection.scalar(
                        sa.text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%outbox%'")
                    )
                    functions = await connection.scalar(
                        sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'lkern_outbox%'")
                    )
                return differences, int(triggers or 0), int(functions or 0)
            finally:
                await engine.dispose()

        assert asyncio.run(inspect_database()) == ([], 1, 1)
        _migrate(url, upgrade=False)
        differences, triggers, functions = asyncio.run(inspect_database())
        assert (triggers, functions) == (0, 0)
        # The table and its indexes are gone (autogenerate would add them back).
        assert {difference[0] for difference in differences} == {"add_table", "add_index"}
    finally:
        database.drop()


# === PUBLISHING ===
async def test_relay_publishes_in_order_in_batches_and_marks_rows_sent(
    kafka_broker: LocalBroker, database_url: str, db: Database
) -> None:
    topic = new_topic()
    settings = make_settings(kafka_broker, database_url, outbox_batch_size=50)
    token = request_id_var.set("req-outbox-test")
    try:
        event_ids = await write_events(db, topic, ["a", "b", "c"], per_key=40)
    finally:
        request_id_var.reset(token)
    relay = OutboxRelay(settings, db, topics=[topic])
    await relay.start()
    try:
        async with EventCollector(kafka_broker.bootstrap_servers, [topic]) as collector:
            got = await collector.wait_for(lambda events: len(events) >= 120, WAIT_S)
        await eventually(
            lambda: relay.status.published == 120, "all rows are marked sent", timeout_s=WAIT_S
        )
    finally:
        await relay.stop()

    assert sorted(ids_of(got)) == sorted(event_ids)
    # 120 rows in batches of 50: three rounds, not one round trip per event.
    assert relay.status.rounds == 3
    for key in ("a", "b", "c"):
        of_key = sorted((e for e in got if e.key == key), key=lambda e: e.offset)
        assert [event.value["n"] for event in of_key] == list(range(40))
        assert len({event.partition for event in of_key}) == 1
    assert got[0].headers["x-request-id"] == "req-outbox-test"
    assert got[0].headers["ce_id"] == got[0].event_id
    # Every message is signed by the relay's key, over the exact value bytes.
    verifier = EventVerifier({TEST_CLIENT: shared_dev_pki().event_jwks_file(TEST_CLIENT)})
    for event in got:
        verifier.verify(TEST_CLIENT, event.raw, event.headers[SIGNATURE_HEADER].encode())
    assert await unsent(db) == 0
    async with db.transaction() as session:
        sent = await session.scalar(
            sa.select(sa.func.count()).where(OutboxEvent.sent_at.is_not(None))
        )
    assert sent == 120


def test_a_relay_without_a_signing_key_does_not_start(database_url: str, db: Database) -> None:
    unsigned = make_settings(None, database_url, event_signing_key_file=None)
    with pytest.raises(EventSigningError, match="EVENT_SIGNING_KEY_FILE must be set"):
        OutboxRelay(unsigned, db, topics=[new_topic()])


async def test_a_rolled_back_transaction_publishes_nothing(
    kafka_broker: LocalBroker, database_url: str, db: Database
) -> None:
    topic = new_topic()
    relay = OutboxRelay(make_settings(kafka_broker, database_url), db, topics=[topic])
    await relay.start()
    try:
        async with EventCollector(kafka_broker.bootstrap_servers, [topic]) as collector:
            with pytest.raises(RuntimeError):
                await write_events(db, topic, ["k"], per_key=3, fail=True)
            # Same key, so same partition: had the rolled-back events been published, they
            # would come before this one.
            committed = await write_events(db, topic, ["k"], per_key=1)
            got = await collector.wait_for(lambda events: len(events) >= 1, WAIT_S)
            await asyncio.sleep(0.5)
        assert ids_of(collector.events) == committed
        assert ids_of(got) == committed
    finally:
        await relay.stop()
    async with db.transaction() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == 1


async def test_notify_wakes_the_relay_long_before_its_poll_interval(
    kafka_broker: LocalBroker, database_url: str, db: Database
) -> None:
    topic = new_topic()
    settings = make_settings(kafka_broker, database_url, outbox_poll_interval_seconds=3600.0)
    relay = OutboxRelay(settings, db, topics=[topic])
    await relay.start()
    try:
        async with EventCollector(kafka_broker.bootstrap_servers, [topic]) as collector:
            await eventually(
                lambda: (
                    relay.status.role == RelayRole.LEADER
                    and relay.status.broker_verified_at is not None
                ),
                "the relay leads and has verified the broker",
                timeout_s=WAIT_S,
            )
            await asyncio.sleep(0.3)  # past its first (empty) read: now it waits
            event_ids = await write_events(db, topic, ["k"], per_key=1)
            # It polls once an hour: an event within 5 s can only come from NOTIFY.
            got = await collector.wait_for(lambda events: len(events) >= 1, within=5.0)
        assert ids_of(got) == event_ids
        assert relay.status.notifications >= 1
    finally:
        await relay.stop()


# === LEADERSHIP ===
async def test_two_relays_publish_each_event_once_and_a_standby_takes_over(
    kafka_broker: LocalBroker, database_url: str, db: Database
) -> None:
    topic = new_topic()
    # A relay whose connection broke waits 3 s before reconnecting; a standby retries the
    # lock every 0.2 s: so the standby takes over.
    settings = make_settings(kafka_broker, database_url, outbox_retry_backoff_seconds=3.0)
    relays = {
        name: OutboxRelay(settings, db, topics=[topic], name=name)
        for name in ("relay-a", "relay-b")
    }
    for relay in relays.values():
        await relay.start()
    try:
        async with EventCollector(kafka_broker.bootstrap_servers, [topic]) as collector:
            await eventually(
                lambda: (
                    sorted(relay.status.role for relay in relays.values())
                    == [RelayRole.LEADER, RelayRole.STANDBY]
                ),
                "one relay leads, the other stands by",
                timeout_s=WAIT_S,
            )
            leader = next(n for n, r in relays.items() if r.status.role == RelayRole.LEADER)
            standby = next(n for n in relays if n != leader)
            first = await write_events(db, topic, ["a", "b"], per_key=25)
            await collector.wait_for(lambda events: len(events) >= 50, WAIT_S)
            await eventually(lambda: _empty(db), "the outbox is published", timeout_s=WAIT_S)
            assert relays[standby].status.published == 0

            # The leader's database connection dies: PostgreSQL frees the lock.
            await _terminate_backend(database_url, leader)
            await eventually(
                lambda: relays[standby].status.role == RelayRole.LEADER,
                "the standby takes over",
                timeout_s=WAIT_S,
            )
            second = await write_events(db, topic, ["a", "b"], per_key=25)
            await collector.wait_for(lambda events: len(events) >= 100, WAIT_S)
            await eventually(lambda: _empty(db), "the outbox is published", timeout_s=WAIT_S)
            await eventually(
                lambda: relays[leader].status.role == RelayRole.STANDBY,
                "the old leader is back as standby",
                timeout_s=WAIT_S,
            )
            await asyncio.sleep(1.0)  # room for a duplicate, were there one
            counts: dict[str, int] = {}
            for event in collector.events:
                counts[event.event_id] = counts.get(event.event_id, 0) + 1
        assert sorted(counts) == sorted(first + second)
        assert set(counts.values()) == {1}
        assert relays[standby].status.published == 50
        assert relays[leader].status.published == 50
    finally:
        for relay in relays.values():
            await relay.stop()


async def _empty(db: Database) -> bool:
    return await unsent(db) == 0


async def _terminate_backend(database_url: str, application_name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        terminated = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            application_name,
        )
        assert terminated == 1
    finally:
        await connection.close()


# === BROKER FAULTS ===
async def test_events_wait_while_the_broker_is_down_and_go_out_when_it_is_up(
    database_url: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lkern_common.outbox.relay")
    topic = new_topic()
    port = free_port()
    settings = make_settings(
        None,
        database_url,
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        # Cleanup runs often and would delete sent rows at once: it must not touch unsent ones.
        outbox_retention_seconds=0.0,
        outbox_cleanup_interval_seconds=0.2,
        outbox_backlog_warn_seconds=0.1,
        outbox_backlog_log_interval_seconds=0.2,
    )
    relay = OutboxRelay(settings, db, topics=[topic])
    failures_before = metric("lkern_outbox_publish_failures_total")
    published_before = metric("lkern_outbox_published_events_total")
    await relay.start()
    try:
        event_ids = await write_events(db, topic, ["a", "b"], per_key=5)
        await eventually(lambda: relay.status.failures >= 2, "the relay retried", timeout_s=WAIT_S)
        await eventually(
            lambda: "Outbox backlog: 10 events wait" in caplog.text,
            "the backlog is logged",
            timeout_s=WAIT_S,
        )
        readiness = await relay.readiness()
        assert readiness.ok is True  # a broker outage does not make the service unready
        assert readiness.details["pending"] == 10
        assert readiness.details["oldest_pending_age_seconds"] > 0
        assert readiness.details["relay"] == "leader"
        assert readiness.details["broker"] == "never verified"
        assert readiness.details["broker_verified_at"] is None
        assert readiness.degraded is True  # events wait and the broker was never verified
        assert "10 events wait" in readiness.details["reason"]
        assert readiness.details["last_error"]
        # The metrics (docs/observability.md) tell the same.
        await relay.refresh_metrics()
        assert metric("lkern_outbox_pending_events") == 10
        assert metric("lkern_outbox_oldest_pending_age_seconds") > 0
        assert metric("lkern_outbox_publish_failures_total") - failures_before >= 2
        assert metric("lkern_outbox_relay_leader") == 1

        with LocalBroker(port=port) as broker:  # the broker comes up: no relay restart
            # (A subscribing consumer would make Tansu create the topic with its own default
            # partition count: let the relay create it first.)
            await eventually(
                lambda: relay.status.broker_verified_at is not None,
                "the relay connects",
                timeout_s=WAIT_S,
            )
            async with EventCollector(broker.bootstrap_servers, [topic]) as collector:
                got = await collector.wait_for(lambda events: len(events) >= 10, WAIT_S)
            await eventually(lambda: _empty(db), "the outbox is published", timeout_s=WAIT_S)
            assert sorted(set(ids_of(got))) == sorted(event_ids)
            assert metric("lkern_outbox_published_events_total") - published_before >= 10
            await relay.refresh_metrics()
            assert metric("lkern_outbox_pending_events") == 0
            assert metric("lkern_outbox_oldest_pending_age_seconds") == 0
            readiness = await relay.readiness()
            assert readiness.details["broker"] == "verified"
            assert readiness.degraded is False
            # The relay created its topic with KAFKA_TOPIC_PARTITIONS partitions.
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
            await admin.start()
            try:
                described = await admin.describe_topics([topic])
            finally:
                await admin.close()
            assert len(described[0]["partitions"]) == settings.kafka_topic_partitions == 3
            # Published rows are deleted after the retention period (0 s here).
            await eventually(
                lambda: _outbox_rows_gone(db), "sent rows are cleaned up", timeout_s=WAIT_S
            )
            await eventually(
                lambda: "Outbox backlog is back to normal" in caplog.text,
                "the all-clear is logged",
                timeout_s=WAIT_S,
            )
            await relay.stop()
    finally:
        await relay.stop()


def metric(name: str) -> float:
    """A sample of this process's metrics (no multiprocess folder in tests), 0 when absent."""
    return REGISTRY.get_sample_value(name) or 0.0


async def test_ready_reports_a_paused_broker_by_its_last_verification(
    kafka_broker: LocalBroker, database_url: str, db: Database
) -> None:
    """
    A paused broker keeps its connections open, so a client's state flag still says
    "connected": /ready must report what was last verified (publish or metadata round trip)
    and its age, and be degraded once that is too old while events wait.
    """
    topic = new_topic()
    settings = make_settings(
        kafka_broker,
        database_url,
        outbox_broker_check_interval_seconds=0.2,
        outbox_broker_stale_seconds=1.5,
    )
    relay = OutboxRelay(settings, db, topics=[topic])
    await relay.start()
    try:
        await write_events(db, topic, ["k"], per_key=1)
        await eventually(lambda: _empty(db), "the first event is published")
        verified_at = relay.status.broker_verified_at
        assert verified_at is not None
        # Idle: metadata round trips keep the verification fresh.
        await eventually(
            lambda: (relay.status.broker_verified_at or verified_at) > verified_at,
            "an idle metadata round trip verifies the broker again",
        )
        readiness = await relay.readiness()
        assert (readiness.details["broker"], readiness.degraded) == ("verified", False)
        assert readiness.details["broker_verified_age_seconds"] < 1.5

        kafka_broker.pause()
        try:
            await write_events(db, topic, ["k"], per_key=3)

            async def degraded() -> bool:
                return (await relay.readiness()).degraded

            await eventually(degraded, "/ready is degraded while the paused broker has work")
            readiness = await relay.readiness()
            assert readiness.ok is True  # writes go on: not unready
            assert readiness.details["broker"] == "stale"
            assert readiness.details["broker_verified_age_seconds"] >= 1.5
            assert "3 events wait" in readiness.details["reason"]
        finally:
            kafka_broker.resume()
        await eventually(lambda: _empty(db), "the events go out after the resume")

        async def healthy() -> bool:
            result = await relay.readiness()
            return result.details["broker"] == "verified" and not result.degraded

        await eventually(healthy, "/ready is back to verified")
    finally:
        await relay.stop()


async def _outbox_rows_gone(db: Database) -> bool:
    async with db.transaction() as session:
        return await session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == 0


async def test_ensure_topics_creates_only_missing_topics(kafka_broker: LocalBroker) -> None:
    settings = make_settings(kafka_broker, "postgresql+asyncpg://unused/unused")
    topic = new_topic()
    assert await ensure_topics(settings, [topic, topic]) == [topic]
    assert await ensure_topics(settings, [topic]) == []
