"""
================================================================
FILE: supervisor.py
PATH: /tools/lkern-devstack/src/lkern_devstack/supervisor.py
DESCRIPTION: Keeps the stack's services running (restart with backoff), stops them losing no event
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Generic over services: nothing here knows a service by name.

- :class:`Supervisor` restarts a service that exits, after a backoff that doubles with each
  quick failure (1, 2, 4 … 30 s) and starts again from 1 s once a run has lasted 30 s. The
  rest of the stack keeps running meanwhile: the memory-only broker in particular, which
  holds events the outbox relays already marked as sent.
- :func:`stop_order` puts the producers of events before their consumers, so that a consumer
  still runs while its producers' relays finish their last round.
- :func:`consumer_groups_caught_up` tells, from the broker, whether every consumer group has
  read what was published to the topics it consumes (its lag is 0): the stack waits for it,
  within a grace period, before it stops the consumers and then the broker.
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
BACKOFF_MULTIPLIER = 2.0
# A run at least this long was not a crash loop: the next restart waits INITIAL_BACKOFF_S again.
STABLE_AFTER_S = 30.0
# How long the stack waits, on stop, for consumers to read what their producers published.
DRAIN_GRACE_S = 15.0
DRAIN_POLL_S = 0.5
KAFKA_REQUEST_TIMEOUT_MS = 3000
# A committed offset of -1 means "this group has committed nothing on this partition".
NO_OFFSET = -1


# === WHAT IS SUPERVISED ===
class Supervised(Protocol):
    """What the supervisor needs of a process (``ServiceProcess`` is one)."""

    name: str

    def is_running(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def start(self) -> None: ...


# === RESTART POLICY ===
@dataclass(frozen=True)
class RestartPolicy:
    """How long to wait before restarting a service that exited."""

    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    multiplier: float = BACKOFF_MULTIPLIER
    stable_after_s: float = STABLE_AFTER_S

    def delay(self, failures: int) -> float:
        """The wait before restart number ``failures`` of a row of quick failures (1 = first)."""
        delay: float = self.initial_backoff_s * self.multiplier ** max(0, failures - 1)
        return min(self.max_backoff_s, delay)


@dataclass
class _Run:
    """One supervised process: when its current run started, its quick failures in a row."""

    process: Supervised
    started_at: float
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


# === SUPERVISOR ===
@dataclass
class Supervisor:
    """
    Restarts supervised processes that exit. ``check()`` is called from the caller's loop (the
    main thread: a child started from another thread would get its parent-death signal when
    that thread ends); it never blocks. ``announce`` receives one clear line per exit and per
    restart.
    """

    announce: Callable[[str], None]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic
    _runs: list[_Run] = field(default_factory=list)

    def watch(self, process: Supervised) -> None:
        """Supervise ``process`` (already started)."""
        self._runs.append(_Run(process, started_at=self.clock()))

    def restarts(self, name: str) -> int:
        """How many times the process called ``name`` was restarted."""
        return sum(run.restarts for run in self._runs if run.process.name == name)

    def check(self) -> None:
        """Schedule a restart for each process that exited; restart those whose wait is over."""
        now = self.clock()
        for run in self._runs:
            if run.process.is_running():
                continue
            if run.restart_at is None:
                self._schedule(run, now)
            elif now >= run.restart_at:
                self._restart(run, now)

    def _schedule(self, run: _Run, now: float) -> None:
        lasted = now - run.started_at
        run.failures = 1 if lasted >= self.policy.stable_after_s else run.failures + 1
        delay = self.policy.delay(run.failures)
        run.restart_at = now + delay
        self.announce(
            f"{run.process.name} exited (code {run.process.exit_code()}) after {lasted:.1f} s: "
            f"restarting it in {delay:.1f} s; the rest of the stack keeps running."
        )

    def _restart(self, run: _Run, now: float) -> None:
        run.restart_at = None
        run.started_at = now
        run.restarts += 1
        try:
            run.process.start()
        except OSError as error:  # e.g. the interpreter vanished: try again after the backoff
            self.announce(f"{run.process.name} could not be restarted: {error}")
            return
        self.announce(f"{run.process.name} restarted (restart {run.restarts}).")


# === STOP ORDER ===
def stop_order(names: Sequence[str], consumes_from: Mapping[str, Iterable[str]]) -> list[str]:
    """
    ``names`` (in start order) in the order to stop them: a service stops before every service
    that consumes its events (so the consumer still runs while the producer's relay drains);
    otherwise the reverse of the start order. ``consumes_from`` maps a service to the services
    whose events it consumes.
    """
    remaining = list(reversed(names))
    ordered: list[str] = []
    while remaining:
        # The latest started service none of whose producers still runs.
        ready = next(
            (
                name
                for name in remaining
                if not any(
                    producer in remaining and producer != name
                    for producer in consumes_from.get(name, ())
                )
            ),
            remaining[0],  # a cycle: fall back to the reverse start order
        )
        ordered.append(ready)
        remaining.remove(ready)
    return ordered


# === CONSUMER LAG ===
Subscriptions = Mapping[str, Sequence[str]]


def subscriptions_from_ready(body: Mapping[str, Any]) -> dict[str, list[str]]:
    """
    Consumer group → topics, from a service's ``/ready`` body: every check whose details name a
    ``group_id`` and its ``topics`` (``lkern_common.kafka.consumer``'s status does).
    """
    found: dict[str, list[str]] = {}
    checks = body.get("checks")
    for details in (checks or {}).values() if isinstance(checks, dict) else ():
        if isinstance(details, dict) and details.get("group_id") and details.get("topics"):
            found[str(details["group_id"])] = [str(topic) for topic in details["topics"]]
    return found


async def _consumer_lag(
    bootstrap_servers: str, subscriptions: Subscriptions | None = None
) -> dict[str, int]:
    """
    Group → messages not yet read. With ``subscriptions`` (group → topics, what the consumers
    said on /ready) exactly those, a partition without a committed offset counted from its
    start (a group that has not joined yet has read nothing). Without, every group on the
    broker over the topics it has committed offsets in (the broker does not say which topics
    a group subscribes to).
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS
    )
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS
    )
    try:
        await admin.start()
        await reader.start()
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(await reader.topics())
            for partition in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}  # no topic, nothing to read
        starts = await reader.beginning_offsets(partitions)
        ends = await reader.end_offsets(partitions)
        groups: dict[str, set[str] | None]
        if subscriptions is None:
            groups = {group: None for group, _protocol in await admin.list_consumer_groups()}
        else:
            groups = {group: set(topics) for group, topics in subscriptions.items()}
        lag: dict[str, int] = {}
        for group, subscribed in groups.items():
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            topics = subscribed or {tp.topic for tp, meta in committed.items() if meta.offset >= 0}
            lag[group] = sum(
                max(0, ends.get(tp, 0) - max(starts.get(tp, 0), committed[tp].offset))
                for tp in partitions
                if tp.topic in topics and tp in committed
            )
        return lag
    finally:
        await reader.stop()
        await admin.close()


def consumer_lag(
    bootstrap_servers: str, subscriptions: Subscriptions | None = None
) -> dict[str, int] | None:
    """Group → unread messages, or None when the broker cannot be asked."""
    try:
        return asyncio.run(_consumer_lag(bootstrap_servers, subscriptions))
    except (KafkaError, OSError, TimeoutError) as error:
        logger.info("Cannot read the consumer groups' lag: %s", error)
        return None


def consumer_groups_caught_up(
    bootstrap_servers: str,
    grace_s: float = DRAIN_GRACE_S,
    announce: Callable[[str], None] | None = None,
    subscriptions: Subscriptions | None = None,
) -> bool:
    """
    Wait until the consumer groups (those of ``subscriptions``, else every group) have read
    everything in their topics, at most ``grace_s`` seconds. True when they did; False (and a
    line saying how many are left) when not.
    """
    deadline = time.monotonic() + grace_s
    lag: dict[str, int] | None = None
    while True:
        with contextlib.suppress(Exception):
            lag = consumer_lag(bootstrap_servers, subscriptions)
        if lag is not None and not any(lag.values()):
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(DRAIN_POLL_S)
    if announce is not None:
        left = ", ".join(f"{group}: {count}" for group, count in (lag or {}).items() if count)
        announce(
            f"Consumers had not read every event after {grace_s:.0f} s "
            f"({left or 'the broker did not answer'})."
        )
    return False
