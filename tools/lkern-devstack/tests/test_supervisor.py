"""
================================================================
FILE: test_supervisor.py
PATH: /tools/lkern-devstack/tests/test_supervisor.py
DESCRIPTION: The stack's supervisor: restart with backoff, stop order, consumers' lag (real broker)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Real child processes (a tiny ``app`` package run as ``python -m app``, the way a service runs)
and a real broker; only the stop order's graph is pure logic.
"""

# === IMPORTS ===
import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.process import ServiceProcess
from lkern_devstack.stack import LocalStack, StackSettings
from lkern_devstack.supervisor import (
    RestartPolicy,
    Supervisor,
    consumer_groups_caught_up,
    consumer_lag,
    stop_order,
    subscriptions_from_ready,
)
from lkern_devstack.testing import eventually

# === CONSTANTS ===
QUICK = RestartPolicy(initial_backoff_s=0.2, max_backoff_s=0.8, stable_after_s=60.0)


# === HELPERS ===
def fake_service(folder: Path, code: str) -> Path:
    """A folder with an ``app`` package whose ``__main__`` runs ``code``."""
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "__init__.py").write_text("")
    (folder / "app" / "__main__.py").write_text(code)
    return folder


def service(folder: Path, name: str, lines: list[str]) -> ServiceProcess:
    return ServiceProcess(
        name,
        env={},
        http_port=free_port(),
        service_dir=folder,
        sink=lambda _name, line: lines.append(line),
    )


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    with LocalBroker(free_port()) as running:
        yield running


# === RESTART ===
@pytest.mark.asyncio
async def test_a_service_that_exits_is_restarted_with_a_growing_backoff(
    scratch_dir: Path,
) -> None:
    crashing = service(
        fake_service(scratch_dir / "crashing", "raise SystemExit(3)"), "crashing", []
    )
    steady = service(
        fake_service(scratch_dir / "steady", "import time\ntime.sleep(120)"), "steady", []
    )
    announced: list[str] = []
    supervisor = Supervisor(announce=announced.append, policy=QUICK)
    for process in (crashing, steady):
        process.start()
        supervisor.watch(process)
    steady_pid = steady.pid
    try:

        def restarted_three_times() -> bool:
            supervisor.check()
            return supervisor.restarts("crashing") >= 3

        await eventually(restarted_three_times, "the crashing service restarted 3 times", 60)
        exits = [line for line in announced if line.startswith("crashing exited (code 3)")]
        delays = [line.split("restarting it in ")[1].split(" s")[0] for line in exits[:3]]
        assert delays == ["0.2", "0.4", "0.8"], announced
        assert "the rest of the stack keeps running" in exits[0]
        assert "crashing restarted (restart 1)." in announced
        # The other service was left alone.
        assert steady.is_running() and steady.pid == steady_pid
        assert supervisor.restarts("steady") == 0
    finally:
        crashing.stop()
        steady.stop()


def test_a_long_run_resets_the_backoff() -> None:
    now = [0.0]
    announced: list[str] = []

    class Exited:
        name = "svc"
        running = False

        def is_running(self) -> bool:
            return self.running

        def exit_code(self) -> int | None:
            return 1

        def start(self) -> None:
            self.running = True

    process = Exited()
    supervisor = Supervisor(
        announce=announced.append,
        policy=RestartPolicy(initial_backoff_s=1, stable_after_s=30),
        clock=lambda: now[0],
    )
    supervisor.watch(process)
    for _ in range(3):  # three quick failures: 1, 2, 4 s
        process.running = False
        supervisor.check()
        now[0] += 10
        supervisor.check()
    process.running = False
    now[0] += 100  # a long run, then an exit: back to 1 s
    supervisor.check()
    delays = [line.split("restarting it in ")[1].split(" s")[0] for line in announced[::2]]
    assert delays == ["1.0", "2.0", "4.0", "1.0"], announced


# === STOP ORDER ===
def test_producers_stop_before_their_consumers_else_reverse_start_order() -> None:
    consumes = {"orders": ("contacts",)}
    assert stop_order(["contacts", "orders"], consumes) == ["contacts", "orders"]
    assert stop_order(["orders", "contacts"], consumes) == ["contacts", "orders"]
    assert stop_order(["a", "b", "c"], {}) == ["c", "b", "a"]
    assert stop_order(["a", "b"], {"a": ("b",), "b": ("a",)}) == ["b", "a"]  # a cycle


def test_the_stack_stops_services_producer_first_then_the_broker(
    scratch_dir: Path, broker: LocalBroker
) -> None:
    settings = StackSettings(
        data_dir=scratch_dir / "data",
        kafka_bootstrap_servers=broker.bootstrap_servers,
        database_url="postgresql://unused@127.0.0.1:1/unused",
    )
    said: list[str] = []
    stack = LocalStack(settings, sink=lambda name, line: said.append(f"{name}: {line}"))
    stopped_at: dict[str, float] = {}
    code = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    code += "time.sleep(120)\n"
    for name in ("lkms101-contacts", "lkms102-orders"):  # started contacts first, as `up` does
        process = service(fake_service(scratch_dir / name, code), name, [])
        process.start()
        stack.processes.append(process)
    stack._stops.append(("Kafka broker", lambda: stopped_at.setdefault("broker", time.time())))
    processes = list(stack.processes)
    # A consumer group that has not read everything: the stack waits for it before orders stops.
    asyncio.run(_publish_and_read(broker.bootstrap_servers, published=5, read=2))
    began = time.monotonic()
    stopped = stack.stop(drain_grace_s=2)
    assert stopped == ["lkms101-contacts", "lkms102-orders", "Kafka broker"]
    assert not any(process.is_running() for process in processes)
    assert time.monotonic() - began >= 2
    assert "lkern: Consumers had not read every event after 2 s (lag-group: 3)." in said


# === CONSUMER LAG ===
async def _publish_and_read(bootstrap: str, published: int, read: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n in range(published):
            await producer.send_and_wait("lag-topic", str(n).encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id="lag-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partition = TopicPartition("lag-topic", 0)
        consumer.assign([partition])
        await consumer.commit({partition: read})
    finally:
        await consumer.stop()


def test_the_lag_of_a_group_is_read_from_the_broker(broker: LocalBroker) -> None:
    bootstrap = broker.bootstrap_servers
    asyncio.run(_publish_and_read(bootstrap, published=5, read=2))
    assert consumer_lag(bootstrap) == {"lag-group": 3}
    assert consumer_groups_caught_up(bootstrap, grace_s=1) is False
    asyncio.run(_publish_and_read(bootstrap, published=0, read=5))
    assert consumer_groups_caught_up(bootstrap, grace_s=5) is True


def test_a_subscribed_group_that_read_nothing_yet_has_the_whole_topic_as_lag(
    broker: LocalBroker,
) -> None:
    bootstrap = broker.bootstrap_servers
    asyncio.run(_publish_and_read(bootstrap, published=5, read=2))
    # "late-group" has not joined yet (no committed offset): the broker cannot know it exists.
    subscribed = {"late-group": ["lag-topic"], "lag-group": ["lag-topic"]}
    assert consumer_lag(bootstrap, subscribed) == {"late-group": 5, "lag-group": 3}
    assert consumer_groups_caught_up(bootstrap, grace_s=1, subscriptions=subscribed) is False


def test_subscriptions_are_read_from_a_ready_body() -> None:
    body = {
        "status": "ready",
        "checks": {
            "database": {"ok": True},
            "contact_events": {"ok": True, "group_id": "g", "topics": ["a", "b"], "state": "x"},
        },
    }
    assert subscriptions_from_ready(body) == {"g": ["a", "b"]}
    assert subscriptions_from_ready({"checks": "odd"}) == {}
    assert subscriptions_from_ready({}) == {}
