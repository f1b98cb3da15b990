"""
================================================================
FILE: test_broker.py
PATH: /tools/lkern-devstack/tests/test_broker.py
DESCRIPTION: Local Tansu broker: topics, acks=all produce, consumer group + commit, pause/resume
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from lkern_devstack.broker import BrokerError, LocalBroker, fetch_broker_count, free_port

# === FIXTURES ===
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker(scratch_dir: Path) -> Iterator[LocalBroker]:
    """A running broker on a free port, logging into the scratch folder; stopped at the end."""
    with LocalBroker(port=free_port(), log_file=scratch_dir / "tansu.log") as running:
        yield running


async def create_topic(broker: LocalBroker, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, partitions, 1)])
        assert [error[1] for error in response.topic_errors] == [0]
        (described,) = await admin.describe_topics([name])
        assert len(described["partitions"]) == partitions
    finally:
        await admin.close()


# === TESTS ===
def test_start_answers_metadata_and_stop_reaps(scratch_dir: Path) -> None:
    broker = LocalBroker(port=free_port())
    broker.start()
    pid = broker.pid
    assert pid is not None
    assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    assert fetch_broker_count(broker.host, broker.port) == 1
    broker.start()  # already running: nothing happens
    assert broker.pid == pid
    broker.stop()
    assert broker.pid is None
    assert not psutil.pid_exists(pid)
    broker.stop()  # stopping twice is fine


def test_restart_after_the_broker_died(scratch_dir: Path) -> None:
    broker = LocalBroker(port=free_port(), log_file=scratch_dir / "tansu.log")
    broker.start()
    pid = broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while broker.pid is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert broker.pid is None
    broker.start()
    try:
        assert broker.pid not in (None, pid)
        assert fetch_broker_count(broker.host, broker.port) == 1
    finally:
        broker.stop()


def test_second_broker_on_same_port_fails_clearly(broker: LocalBroker) -> None:
    with pytest.raises(BrokerError, match=rf"Port {broker.port} .*already in use"):
        LocalBroker(port=broker.port).start()


def test_stop_of_paused_broker(scratch_dir: Path) -> None:
    broker = LocalBroker(port=free_port())
    broker.start()
    pid = broker.pid
    assert pid is not None
    broker.pause()
    broker.stop(grace=10)
    assert not psutil.pid_exists(pid)


@pytest.mark.asyncio
async def test_topic_produce_and_group_consume_with_commit(broker: LocalBroker) -> None:
    await create_topic(broker, "devstack.test", partitions=3)

    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        for number in range(10):
            await producer.send_and_wait(
                "devstack.test", f"message-{number}".encode(), key=f"key-{number}".encode()
            )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        "devstack.test",
        bootstrap_servers=broker.bootstrap_servers,
        group_id="devstack-test-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        deadline = time.monotonic() + 25
        while len(received) < 10 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += [m.value for messages in batches.values() for m in messages if m.value]
        assert sorted(received) == sorted(f"message-{n}".encode() for n in range(10))
        await consumer.commit()
        committed = [await consumer.committed(TopicPartition("devstack.test", p)) for p in range(3)]
        assert sum(offset or 0 for offset in committed) == 10
    finally:
        await consumer.stop()


@pytest.mark.asyncio
async def test_send_during_pause_completes_after_resume(broker: LocalBroker) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=20000,
    )
    await create_topic(broker, "devstack.pause", partitions=1)
    await producer.start()
    try:
        before = await producer.send_and_wait("devstack.pause", b"before")
        pid = broker.pid
        broker.pause()
        try:
            sending = asyncio.ensure_future(producer.send_and_wait("devstack.pause", b"during"))
            await asyncio.sleep(1.5)
            assert not sending.done()
        finally:
            broker.resume()
        during = await asyncio.wait_for(sending, timeout=15)
        assert during.offset == before.offset + 1
        assert broker.pid == pid
    finally:
        await producer.stop()


@pytest.mark.asyncio
async def test_idempotent_producer_is_unsupported(broker: LocalBroker) -> None:
    """Tansu 0.6.0 answers InitProducerId with an error: keep enable_idempotence=False."""
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True)
    try:
        with pytest.raises(KafkaError):
            await producer.start()
    finally:
        await producer.stop()
