"""
================================================================
FILE: relay.py
PATH: /libs/lkern-common/src/lkern_common/outbox/relay.py
DESCRIPTION: Outbox relay: publishes unsent outbox rows to Kafka, one active relay per database
VERSION: v1.4.0
UPDATED: 2026-12-02 06:40:00
================================================================

How it works (the contract is in docs/events.md):

- The relay runs as a task in the service process and owns one dedicated PostgreSQL connection
  (``application_name`` ``<service>-outbox-relay``), outside the pool.
- Leadership: on that connection it takes a session-level advisory lock
  (``pg_try_advisory_lock``). The holder publishes; every other relay of the same database is a
  standby and tries again every ``OUTBOX_STANDBY_RETRY_SECONDS``. When the leader's connection
  ends (process exit, crash, network loss, ``pg_terminate_backend``), PostgreSQL releases the
  lock and a standby takes over. So one relay publishes at a time and per-key order holds.
- The leader ``LISTEN``s on the outbox channel; the outbox trigger notifies it when a writing
  transaction commits, so it wakes at once. It also polls every
  ``OUTBOX_POLL_INTERVAL_SECONDS`` as a fallback.
- Each round it reads up to ``OUTBOX_BATCH_SIZE`` unsent rows in id order (autocommit: no
  transaction stays open), hands them all to the producer (``acks="all"``; aiokafka batches them
  per partition: not one round trip per event), waits for the acknowledgements, then marks the
  acknowledged rows sent in one ``UPDATE``. When a message of a key fails, the later messages of
  that key stay unsent too and are published again after it: per-key order before delivery
  count.
- Broker down: the round fails after ``KAFKA_REQUEST_TIMEOUT_MS``, the relay waits (exponential
  backoff with jitter up to ``OUTBOX_RETRY_BACKOFF_MAX_SECONDS``; tenacity, the same retry style
  as the consumer: lkern_common.retrying) and tries again, for ever; the events wait
  in the outbox and the REST API keeps accepting writes. No restart is needed when it is back.
- Delivery is at least once: a crash between the broker's acknowledgement and the ``UPDATE``,
  or a request the broker executed after the client gave up on it, publishes a row again (same
  ``event_id``). Consumers deduplicate by ``event_id`` (inbox).
- Tracing (lkern_common.tracing): each row's hand-over runs in an ``outbox publish <topic>``
  span whose parent is the trace context stored in the row's headers; the producer's ``send``
  span below it puts its own ``traceparent`` into the Kafka headers.
- Every message is signed as it is handed to the producer: a detached JWS over the exact value
  bytes in the ``x-lkern-signature`` header, with the key of ``EVENT_SIGNING_KEY_FILE``
  (lkern_common.event_signing). A relay without a signing key does not start.
- The broker is reported by what was last verified, never by a client's state flag (a paused
  broker keeps its TCP connections open): the last acknowledged publish, or, while the outbox
  is idle, a metadata round trip every ``OUTBOX_BROKER_CHECK_INTERVAL_SECONDS``. /ready shows
  when and how long ago (``broker_verified_at``, ``broker_verified_age_seconds``) and reports
  the outbox *degraded* (still 200: writes go on, events wait) while this relay leads, events
  wait, and the last verification is older than ``OUTBOX_BROKER_STALE_SECONDS``.
- Sent rows are deleted ``OUTBOX_RETENTION_SECONDS`` after they were sent. The backlog (unsent
  count, age of the oldest) is on /ready and logged as a warning while it is older than
  ``OUTBOX_BACKLOG_WARN_SECONDS``.
- Metrics (docs/observability.md): events published, failed rounds, which worker leads, and
  the backlog read at scrape time (``refresh_metrics``).
"""

# === IMPORTS ===
import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy import make_url
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from lkern_common.database import Database
from lkern_common.event_signing import SIGNATURE_HEADER, EventSigner
from lkern_common.kafka.producer import create_producer
from lkern_common.kafka.topics import ensure_topics
from lkern_common.metrics import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
    OUTBOX_RELAY_LEADER,
)
from lkern_common.outbox.model import NOTIFY_CHANNEL, OUTBOX_TABLE
from lkern_common.outbox.store import BACKLOG_SQL, OutboxBacklog, outbox_backlog
from lkern_common.retrying import (
    StopAwareSleep,
    exponential_backoff,
    retry_errors_except,
    stop_when,
)
from lkern_common.settings import ServiceSettings
from lkern_common.tracing import outbox_publish_span
from lkern_common.web.health import CheckResult, ReadinessCheck

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
FETCH_SQL = f"""
SELECT id, topic, key, payload::text AS payload, headers::text AS headers
FROM {OUTBOX_TABLE} WHERE sent_at IS NULL ORDER BY id LIMIT $1
"""
MARK_SENT_SQL = f"UPDATE {OUTBOX_TABLE} SET sent_at = now() WHERE id = ANY($1::bigint[])"
CLEANUP_SQL = f"""
DELETE FROM {OUTBOX_TABLE} WHERE id IN (
    SELECT id FROM {OUTBOX_TABLE}
    WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""
CLEANUP_CHUNK = 5000
CONNECT_TIMEOUT_S = 10.0
# Any statement of the relay that takes longer means a dead connection (e.g. a network
# partition without a reset): fail it, reconnect, compete for the lock again.
COMMAND_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 5.0
# Longest wait for the idle relay's metadata round trip (a paused broker never answers).
BROKER_CHECK_TIMEOUT_S = 5.0
# Errors that mean "the broker cannot be reached now": stop handing further messages to the
# producer in this round (each would wait for the same timeout).
BROKER_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError)


def advisory_lock_key(table: str = OUTBOX_TABLE) -> int:
    """The 64-bit advisory lock key of the relay of ``table`` (stable across processes)."""
    digest = hashlib.blake2b(f"lkern-outbox-relay:{table}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


LOCK_KEY = advisory_lock_key()


# === TYPES ===
class RelayRole(StrEnum):
    """What a relay is doing now."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    STANDBY = "standby"
    LEADER = "leader"


class BrokerState(StrEnum):
    """The broker as /ready reports it: by its last verification and that one's age."""

    VERIFIED = "verified"  # acknowledged a publish or answered metadata recently
    STALE = "stale"  # last verified longer ago than OUTBOX_BROKER_STALE_SECONDS
    NEVER_VERIFIED = "never verified"  # not since this relay started (or a standby)


@dataclass
class RelayStatus:
    """The relay's state, shown on /ready (``outbox`` check) and used by tests."""

    role: RelayRole = RelayRole.STOPPED
    published: int = 0  # events this relay published since it started
    rounds: int = 0  # publish rounds (one batch of rows each) since it started
    failures: int = 0  # failed rounds (broker or database) since it started
    notifications: int = 0  # LISTEN/NOTIFY wake-ups received
    leader_terms: int = 0  # how often this relay became the leader
    last_error: str | None = None
    last_published_at: datetime | None = None
    # The last time the broker answered: an acknowledged publish or a metadata round trip.
    broker_verified_at: datetime | None = None
    broker_failing: bool = False  # the last attempt to reach the broker failed

    def broker_verified_age(self) -> float | None:
        """Seconds since the broker was last verified (None: never)."""
        if self.broker_verified_at is None:
            return None
        return max(0.0, (datetime.now(UTC) - self.broker_verified_at).total_seconds())

    def broker_state(self, stale_after: float) -> BrokerState:
        """The broker by its last verification and that one's age."""
        age = self.broker_verified_age()
        if age is None:
            return BrokerState.NEVER_VERIFIED
        return BrokerState.VERIFIED if age <= stale_after else BrokerState.STALE

    def as_details(self, stale_after: float) -> dict[str, Any]:
        """The status as /ready shows it."""
        age = self.broker_verified_age()
        return {
            "relay": self.role.value,
            "broker": self.broker_state(stale_after).value,
            "broker_verified_at": _iso(self.broker_verified_at),
            "broker_verified_age_seconds": None if age is None else round(age, 1),
            "published": self.published,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_published_at": _iso(self.last_published_at),
        }


class _BrokerRoundFailed(Exception):
    """A publish round could not reach the broker (or some events were not acknowledged)."""

    def __init__(self, error: BaseException, what: str) -> None:
        super().__init__(f"{what}: {_describe(error)}")
        self.error = error
        self.what = what


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass
class _Housekeeping:
    """When the leader next deletes old rows, checks the backlog and verifies the broker."""

    next_cleanup: float
    next_backlog_check: float
    next_broker_check: float
    backlog_warned: bool = False


ProducerFactory = Callable[[], AIOKafkaProducer]


# === HELPERS ===
def asyncpg_dsn(database_url: str) -> str:
    """The asyncpg DSN (``postgresql://…``) of a SQLAlchemy database URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _wait_any(seconds: float, *events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set or ``seconds`` have passed."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _describe(error: BaseException) -> str:
    """``Class: message`` of an error, short enough for a log line and /ready."""
    name = error.__class__.__name__
    text = str(error).strip()
    if not text or text == name:
        return name
    return (text if text.startswith(name) else f"{name}: {text}")[:500]


# === RELAY ===
class OutboxRelay:
    """
    Publishes the outbox of one service database to Kafka (see the module docstring).

    ``start()`` spawns the relay task and returns at once (neither the database nor the broker
    has to be up); ``stop()`` lets it finish the current round for up to
    ``OUTBOX_STOP_GRACE_SECONDS``, then cancels it and closes its connection and producer.
    ``topics`` are created (when missing) each time the relay connects to the broker.
    Every message is signed with ``signer`` (default: EVENT_SIGNING_KEY_FILE's key; a missing
    or unreadable key raises here, so a service cannot start publishing unsigned events).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        db: Database,
        *,
        topics: Sequence[str] = (),
        producer_factory: ProducerFactory | None = None,
        name: str | None = None,
        signer: EventSigner | None = None,
    ) -> None:
        self.signer = signer or EventSigner.from_file(settings.event_signing_key_file)
        self.settings = settings
        self.db = db
        self.topics = list(topics)
        self.name = name or f"{settings.service_name}-outbox-relay"
        self.status = RelayStatus()
        self._dsn = asyncpg_dsn(settings.database_url)
        self._producer_factory = producer_factory or (lambda: create_producer(settings))
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    # --- lifecycle ---
    async def start(self) -> None:
        """Start the relay task (no-op when ``OUTBOX_RELAY_ENABLED`` is false)."""
        if self._task is not None:
            return
        if not self.settings.outbox_relay_enabled:
            logger.info("Outbox relay disabled in this process (OUTBOX_RELAY_ENABLED=false)")
            return
        self._stopping.clear()
        self.status = RelayStatus(role=RelayRole.CONNECTING)
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop the relay: finish the current round within the grace period, then cancel."""
        task = self._task
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.settings.outbox_stop_grace_seconds)
        except TimeoutError:
            logger.warning("Outbox relay did not stop within the grace period: cancelling it")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:  # the task never raises, but shutdown must go on regardless
            logger.exception("Outbox relay ended with an error")
        self._task = None
        await self._close_producer()
        self.status.role = RelayRole.STOPPED

    @property
    def running(self) -> bool:
        """True while the relay task runs."""
        return self._task is not None and not self._task.done()

    # --- monitoring ---
    async def backlog(self) -> OutboxBacklog:
        """Unsent events of this database (any relay's)."""
        return await outbox_backlog(self.db)

    async def readiness(self) -> CheckResult:
        """
        Readiness details: the backlog and the relay's state. ``ok`` stays true while the
        database answers: a broker outage does not make the service unready (writes go on and
        the events wait in the outbox). *Degraded* while this relay leads, events wait, and
        the broker was last verified longer ago than OUTBOX_BROKER_STALE_SECONDS (or never).
        """
        backlog = await self.backlog()
        stale_after = self.settings.outbox_broker_stale_seconds
        details = {**backlog.as_details(), **self.status.as_details(stale_after)}
        broker = self.status.broker_state(stale_after)
        degraded = (
            self.status.role == RelayRole.LEADER
            and backlog.pending > 0
            and broker != BrokerState.VERIFIED
        )
        if degraded:
            age = self.status.broker_verified_age()
            last = "never" if age is None else f"{age:.0f} s ago"
            details["reason"] = (
                f"{backlog.pending} events wait and the broker was last verified {last} "
                f"(OUTBOX_BROKER_STALE_SECONDS={stale_after:g})"
            )
        return CheckResult(ok=True, degraded=degraded, details=details)

    def readiness_check(self) -> ReadinessCheck:
        """The readiness check to register with ``add_readiness_check(app, "outbox", …)``."""
        return self.readiness

    async def refresh_metrics(self) -> None:
        """
        The backlog gauges, read from the database when /metrics is scraped (register with
        ``add_metrics_refresher(app, relay.refresh_metrics)``): any worker can answer it.
        """
        backlog = await self.backlog()
        OUTBOX_PENDING.set(backlog.pending)
        OUTBOX_OLDEST_AGE.set(backlog.oldest_age_seconds or 0.0)

    # --- main loop ---
    async def _run(self) -> None:
        """Connection terms until stopped; a failed one is retried with backoff (tenacity)."""
        terms = AsyncRetrying(
            stop=stop_when(self._stopping.is_set),
            retry=retry_errors_except(),
            wait=self._backoff(),
            sleep=StopAwareSleep(self._stopping),
            before_sleep=self._before_reconnect,
            reraise=True,
        )
        while not self._stopping.is_set():
            try:
                await terms(self._connection_term)
            except Exception:  # only when stopping: the last failure is already logged
                break
        self.status.role = RelayRole.STOPPED

    def _backoff(self) -> exponential_backoff:
        return exponential_backoff(
            self.settings.outbox_retry_backoff_seconds,
            self.settings.outbox_retry_backoff_max_seconds,
        )

    def _before_reconnect(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:
            return
        self._record_failure(exc)
        if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError | TimeoutError):
            logger.warning(
                "Outbox relay: database connection failed (%s); retrying in %.1f s",
                _describe(exc),
                state.upcoming_sleep,
            )
        else:  # a bug must not end publishing for good
            logger.error(
                "Outbox relay failed; restarting it in %.1f s",
                state.upcoming_sleep,
                exc_info=exc,
            )

    async def _connection_term(self) -> None:
        """One dedicated connection's life: standby until leader, then lead until it ends."""
        self.status.role = RelayRole.CONNECTING
        connection: asyncpg.Connection = await asyncpg.connect(
            self._dsn,
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
            server_settings={"application_name": self.name[:63]},
        )
        try:
            if await self._wait_for_leadership(connection):
                await self._lead(connection)
        finally:
            was_leader = self.status.role == RelayRole.LEADER
            self.status.role = RelayRole.CONNECTING
            if was_leader:
                # Only the leader zeroes it: a standby of the same process (tests run several
                # apps in one process) must not hide the leader that took over.
                OUTBOX_RELAY_LEADER.set(0)
            await self._close_producer()
            await self._close_connection(connection)
            if was_leader:
                logger.info("Outbox relay %s gave up leadership", self.name)

    async def _wait_for_leadership(self, connection: asyncpg.Connection) -> bool:
        """Take the advisory lock (retrying as standby). False when stopping first."""
        while not self._stopping.is_set():
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.status.role = RelayRole.LEADER
                self.status.leader_terms += 1
                OUTBOX_RELAY_LEADER.set(1)
                logger.info("Outbox relay %s is the leader: it publishes the outbox", self.name)
                return True
            if self.status.role != RelayRole.STANDBY:
                logger.info("Outbox relay %s is on standby (another relay leads)", self.name)
            self.status.role = RelayRole.STANDBY
            await _wait_any(self.settings.outbox_standby_retry_seconds, self._stopping)
        return False

    async def _lead(self, connection: asyncpg.Connection) -> None:
        """Publish until stopping or until the connection fails (then the caller reconnects)."""
        await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        connection.add_termination_listener(self._on_terminated)
        now = time.monotonic()
        housekeeping = _Housekeeping(
            next_cleanup=now,
            next_backlog_check=now + self.settings.outbox_backlog_log_interval_seconds,
            next_broker_check=now + self.settings.outbox_broker_check_interval_seconds,
        )
        rounds = AsyncRetrying(
            stop=stop_when(self._stopping.is_set),
            retry=retry_if_exception_type(_BrokerRoundFailed),
            wait=self._backoff(),
            sleep=StopAwareSleep(self._stopping),
            before_sleep=self._before_broker_retry,
            reraise=True,
        )
        while not self._stopping.is_set():
            try:
                busy: bool = await rounds(self._round, connection, housekeeping)
            except _BrokerRoundFailed:  # only when stopping
                return
            if not busy:
                if time.monotonic() >= housekeeping.next_broker_check:
                    # Idle: a metadata round trip keeps /ready's "last verified" honest.
                    await self._verify_broker()
                    housekeeping.next_broker_check = (
                        time.monotonic() + self.settings.outbox_broker_check_interval_seconds
                    )
                idle = min(
                    self.settings.outbox_poll_interval_seconds,
                    housekeeping.next_cleanup - time.monotonic(),
                    housekeeping.next_backlog_check - time.monotonic(),
                    housekeeping.next_broker_check - time.monotonic(),
                )
                await _wait_any(idle, self._wake, self._stopping)

    async def _round(self, connection: asyncpg.Connection, housekeeping: _Housekeeping) -> bool:
        """
        Housekeeping when due, then publish one batch of unsent rows. Returns False when there
        was nothing to publish; raises :class:`_BrokerRoundFailed` when the broker failed.
        """
        if connection.is_closed():
            raise ConnectionError("the relay's database connection was closed")
        await self._housekeep(connection, housekeeping)
        if self._producer is None:
            try:
                await self._start_producer()
            except (KafkaError, OSError, TimeoutError) as exc:
                raise _BrokerRoundFailed(exc, "cannot connect to the broker") from exc
        self._wake.clear()
        rows = await connection.fetch(FETCH_SQL, self.settings.outbox_batch_size)
        if not rows:
            return False
        sent_ids, error = await self._publish(rows)
        self.status.rounds += 1
        if sent_ids:
            await connection.execute(MARK_SENT_SQL, sent_ids)
            self.status.published += len(sent_ids)
            OUTBOX_PUBLISHED.inc(len(sent_ids))
            self.status.last_published_at = datetime.now(UTC)
            self._broker_verified()
        if error is not None:
            what = f"{len(rows) - len(sent_ids)} of {len(rows)} events not sent"
            raise _BrokerRoundFailed(error, what)
        housekeeping.next_broker_check = (
            time.monotonic() + self.settings.outbox_broker_check_interval_seconds
        )
        return True

    async def _housekeep(self, connection: asyncpg.Connection, due: _Housekeeping) -> None:
        now = time.monotonic()
        if now >= due.next_cleanup:
            await self._cleanup(connection)
            due.next_cleanup = now + self.settings.outbox_cleanup_interval_seconds
        if now >= due.next_backlog_check:
            due.backlog_warned = await self._log_backlog(connection, due.backlog_warned)
            due.next_backlog_check = now + self.settings.outbox_backlog_log_interval_seconds

    # --- publishing ---
    async def _start_producer(self) -> None:
        await ensure_topics(self.settings, self.topics)
        producer = self._producer_factory()
        try:
            await producer.start()
        except BaseException:
            await self._stop_producer(producer)
            raise
        self._producer = producer
        self._broker_verified()  # starting fetched the cluster's metadata

    async def _verify_broker(self) -> None:
        """A metadata round trip (the idle relay's proof that the broker answers)."""
        producer = self._producer
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), BROKER_CHECK_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            if not self.status.broker_failing:
                logger.warning(
                    "Outbox relay: the broker did not answer a metadata request (%s)",
                    _describe(exc),
                )
            self.status.broker_failing = True
            self.status.last_error = _describe(exc)
            return
        self._broker_verified()

    async def _publish(self, rows: Sequence[asyncpg.Record]) -> tuple[list[int], Exception | None]:
        """
        Hand every row to the producer, then wait for all acknowledgements. Returns the ids that
        may be marked sent (acknowledged, and no earlier message of the same key failed) and
        the first error.
        """
        producer = self._producer
        assert producer is not None
        deliveries: list[asyncio.Future[Any] | Exception] = []
        first_error: Exception | None = None
        for row in rows:
            if first_error is not None and isinstance(first_error, BROKER_UNREACHABLE):
                deliveries.append(first_error)  # not handed over: it would wait just the same
                continue
            try:
                value = row["payload"].encode()
                stored: dict[str, Any] = json.loads(row["headers"])
                # Continues the trace stored with the event (a no-op while tracing is off).
                with outbox_publish_span(row["topic"], stored):
                    headers = [(name, str(header).encode()) for name, header in stored.items()]
                    headers.append((SIGNATURE_HEADER, self.signer.sign(value)))
                    key = row["key"]
                    delivery = await producer.send(
                        row["topic"],
                        value=value,
                        key=None if key is None else key.encode(),
                        headers=headers,
                    )
                deliveries.append(delivery)
            except Exception as exc:  # this message could not be queued
                first_error = first_error or exc
                deliveries.append(exc)
        pending = [item for item in deliveries if isinstance(item, asyncio.Future)]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

        sent_ids: list[int] = []
        failed_keys: set[str | None] = set()
        for row, item in zip(rows, deliveries, strict=True):
            if isinstance(item, Exception):
                error: BaseException | None = item
            elif item.cancelled():
                error = asyncio.CancelledError()
            else:
                error = item.exception()
            if error is not None or row["key"] in failed_keys:
                failed_keys.add(row["key"])
                if first_error is None and isinstance(error, Exception):
                    first_error = error
                continue
            sent_ids.append(row["id"])
        if first_error is None and len(sent_ids) < len(rows):  # pragma: no cover - defensive
            first_error = RuntimeError("some events were not acknowledged")
        return sent_ids, first_error

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop_producer(producer)

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), CLOSE_TIMEOUT_S)
        except Exception as exc:
            logger.warning("Outbox relay: closing the Kafka producer failed: %s", _describe(exc))

    # --- housekeeping ---
    async def _cleanup(self, connection: asyncpg.Connection) -> None:
        """Delete rows sent longer ago than the retention period, in short chunks."""
        retention = self.settings.outbox_retention_seconds
        total = 0
        while not self._stopping.is_set():
            status = await connection.execute(CLEANUP_SQL, retention, CLEANUP_CHUNK)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < CLEANUP_CHUNK:
                break
        if total:
            logger.info("Outbox cleanup deleted %d sent events older than %.0f s", total, retention)

    async def _log_backlog(self, connection: asyncpg.Connection, warned: bool) -> bool:
        """Warn while the oldest unsent event is older than the threshold. Returns 'warned'."""
        row = await connection.fetchrow(BACKLOG_SQL)
        assert row is not None
        backlog = OutboxBacklog(pending=row["pending"], oldest_age_seconds=row["oldest_age"])
        age = backlog.oldest_age_seconds
        if age is not None and age >= self.settings.outbox_backlog_warn_seconds:
            verified = self.status.broker_verified_age()
            logger.warning(
                "Outbox backlog: %s%d events wait, the oldest for %.0f s (broker last verified "
                "%s; last error: %s)",
                "at least " if backlog.truncated else "",
                backlog.pending,
                age,
                "never" if verified is None else f"{verified:.0f} s ago",
                self.status.last_error,
            )
            return True
        if warned:
            logger.info("Outbox backlog is back to normal (%d events wait)", backlog.pending)
        return False

    async def _close_connection(self, connection: asyncpg.Connection) -> None:
        if connection.is_closed():
            return
        try:
            await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
        except Exception:
            connection.terminate()

    # --- callbacks and bookkeeping ---
    def _on_notify(self, connection: Any, pid: int, channel: str, payload: object) -> None:
        self.status.notifications += 1
        self._wake.set()

    def _on_terminated(self, connection: Any) -> None:
        self._wake.set()

    def _broker_verified(self) -> None:
        if self.status.broker_failing:
            logger.info("Outbox relay: the broker is reachable again")
        self.status.broker_failing = False
        self.status.broker_verified_at = datetime.now(UTC)

    def _record_failure(self, error: BaseException) -> None:
        self.status.failures += 1
        OUTBOX_PUBLISH_FAILURES.inc()
        self.status.last_error = _describe(error)

    def _before_broker_retry(self, state: RetryCallState) -> None:
        failed = state.outcome.exception() if state.outcome else None
        if not isinstance(failed, _BrokerRoundFailed):
            return
        self._record_failure(failed.error)
        self.status.broker_failing = True
        logger.warning(
            "Outbox relay: %s (%s); events wait in the outbox, retry %d in %.1f s",
            failed.what,
            _describe(failed.error),
            state.attempt_number,
            state.upcoming_sleep,
        )
