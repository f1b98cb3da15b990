"""
================================================================
FILE: consumer.py
PATH: /libs/lkern-common/src/lkern_common/kafka/consumer.py
DESCRIPTION: Idempotent Kafka consumer: inbox in the handler's transaction, retries, DLQ
VERSION: v1.3.0
UPDATED: 2026-12-02 06:15:00
================================================================

:class:`IdempotentConsumer` consumes a service's topics in one consumer group and applies each
event through a handler inside one database transaction that also records the event's id in the
inbox (:mod:`lkern_common.kafka.inbox`). The Kafka offset is committed only after that
transaction committed: at-least-once delivery, exactly-once effect.

Per message, in partition order (see "Batches" below for how consecutive messages share one
transaction):

0. The signature is checked first (lkern_common.event_signing): the ``x-lkern-signature``
   header must be a detached JWS over the exact value bytes by a key of the service that owns
   the topic (``publishers``: topic → service name; its keys from EVENT_TRUSTED_JWKS). An
   unsigned message, a bad signature or an unknown key goes to the dead-letter topic at once
   with reason ``bad-signature``; nothing of it is parsed or applied.
1. The value is decoded as JSON. When it is not a JSON object, or misses the envelope fields
   ``event_id`` (a UUID) and ``event_type`` (a non-empty string), or no handler is registered
   for its ``event_type`` or topic, it goes to the dead-letter topic at once.
2. In one transaction: ``INSERT INTO inbox_events … ON CONFLICT DO NOTHING``; when the id was
   already there the event is a duplicate delivery and is skipped; otherwise the handler runs
   ``handler(session, event)`` in the same session. The transaction commits.
3. A handler that raises is retried with exponential backoff
   (``KAFKA_CONSUMER_RETRY_BACKOFF_MS`` doubling up to ``KAFKA_CONSUMER_RETRY_BACKOFF_MAX_MS``),
   ``KAFKA_CONSUMER_MAX_ATTEMPTS`` attempts in all; after the last one the message goes to the
   dead-letter topic with the error and the consumer goes on with the next message. A handler
   that finds the event unusable (say, a malformed snapshot) raises :class:`InvalidEventError`:
   the message goes to the dead-letter topic at once, without retries.
4. A database that cannot be reached is not a handler error: the message is retried (backoff
   up to 5 s) for as long as the database is down, never dead-lettered, never skipped.
5. The offset after the message is committed only once the message was applied, found to be a
   duplicate, or published to the dead-letter topic. A dead-letter publish that fails is
   retried until it succeeds or the consumer stops; an unfinished message is never committed,
   so the next member of the group receives it again.

Batches: the messages of one fetch, per partition, are applied together when they can be. A run
of consecutive valid events with a handler is claimed in the inbox with one statement, their
handlers run in order in the same transaction, and one commit and one offset commit cover the
run (instead of one of each per message: what makes a backlog of thousands of events apply in
seconds). The first message that is not a valid event ends the run and takes the one-message
path. When a handler fails inside a run, the run's transaction is rolled back, the events
before the failing one are applied again as a shorter run, and the failing event continues on
the one-message path: the failed try counts as its first attempt, so it gets the same retries,
backoff and dead-lettering as a message handled alone. A database that cannot be reached sends
the run's first message down the one-message path, which waits for the database.

Dead-letter message format (topic given by the service, e.g. ``lkern.orders.dlq``): key and value
are the original message's, byte for byte, so that it can be replayed as it is; the original
headers are kept (``x-request-id`` among them) and these headers are added (UTF-8 strings):

========================= =================================================================
``x-dlq-reason``          ``bad-signature``, ``invalid-json``, ``invalid-envelope``,
                          ``no-handler``, ``handler-failed``
``x-dlq-error``           the error text (exception type and message, at most 2000 chars)
``x-dlq-attempts``        times the handler ran (0 when it was refused before the handler)
``x-dlq-original-topic``  topic, ``…-partition``, ``…-offset``, ``…-timestamp`` (ms) of
                          the original message
``x-dlq-consumer-group``  the group that gave up on it
``x-dlq-failed-at``       when, ISO 8601 UTC
========================= =================================================================

Dead-lettered events are not recorded in the inbox, so republishing one (same ``event_id``)
applies it. Nothing but :meth:`IdempotentConsumer.stop` ends the consumer: a broker that is
down is reconnected to, an unexpected error restarts the Kafka client after a backoff.
Metrics (outcomes, retries, lag per partition, batch sizes, apply time, event end-to-end
latency, last progress): ``self.metrics`` (lkern_common.metrics.consumer), called at a few
points. While handling a message, the request id is the message's ``x-request-id`` header (else the
event id), so the handler's log lines carry it.
"""

# === IMPORTS ===
import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from lkern_common.database import Database
from lkern_common.event_signing import SIGNATURE_HEADER, BadSignatureError, EventVerifier
from lkern_common.kafka.inbox import InboxEvent, purge_inbox
from lkern_common.kafka.producer import create_producer
from lkern_common.kafka.security import kafka_security_options
from lkern_common.kafka.topics import ensure_topics
from lkern_common.metrics.consumer import ConsumerMetrics
from lkern_common.request_context import REQUEST_ID_HEADER, accept_request_id, request_id_var
from lkern_common.settings import ServiceSettings
from lkern_common.web.health import CheckResult, ReadinessCheck

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
POLL_TIMEOUT_MS = 1000
# Most messages per fetch, and so per batch (one transaction).
MAX_POLL_RECORDS = 500
# Backoff ceilings of the retries that never give up (database down, dead-letter publish,
# broker connection).
DATABASE_RETRY_MAX_S = 5.0
DEAD_LETTER_RETRY_MAX_S = 10.0
CONNECT_RETRY_MAX_S = 10.0
MIN_BACKOFF_S = 0.1
DATABASE_PING_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
INBOX_CLEANUP_INTERVAL_S = 3600.0
MAX_ERROR_CHARS = 2000
DLQ_HEADER_PREFIX = "x-dlq-"
# SQLSTATEs that mean "the database is not reachable right now" (not a handler error):
# class 08 connection exception, 57P01..57P03 shutdown / starting up, 53300 too many connections.
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53300")

# === TYPES ===
EventHandler = Callable[[AsyncSession, dict[str, Any]], Awaitable[None]]


class DeadLetterReason(enum.StrEnum):
    """Why a message went to the dead-letter topic (header ``x-dlq-reason``)."""

    BAD_SIGNATURE = "bad-signature"
    INVALID_JSON = "invalid-json"
    INVALID_ENVELOPE = "invalid-envelope"
    NO_HANDLER = "no-handler"
    HANDLER_FAILED = "handler-failed"


class Outcome(enum.StrEnum):
    """What became of one message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead-lettered"


class InvalidEventError(ValueError):
    """A message that can never be processed (bad JSON or envelope): dead-lettered at once."""

    def __init__(self, reason: DeadLetterReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _StopRequested(Exception):
    """``stop()`` interrupted a wait; the message being handled stays uncommitted."""


class _DatabaseUnavailable(Exception):
    """A handler attempt failed because the database could not be reached."""


@dataclass
class _Attempts:
    """How many times the handler ran for the message being processed."""

    count: int = 0


class _BatchHandlerFailed(Exception):
    """A handler raised inside a batch; the batch was rolled back."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"handler failed at message {index} of the batch: {error}")
        self.index = index
        self.error = error


@dataclass(frozen=True)
class Envelope:
    """The envelope fields the consumer needs, parsed from a message value."""

    event_id: uuid.UUID
    event_type: str
    event: dict[str, Any]


@dataclass
class ConsumerStatus:
    """Counters and state of one consumer, for logs and the readiness check's details."""

    group_id: str
    topics: list[str]
    state: str = "stopped"  # stopped | connecting | running | stopping
    assigned_partitions: list[str] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    waiting_for: str | None = None  # "database" | "dead-letter topic" | "broker" | None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_processed_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "state": self.state,
            "group_id": self.group_id,
            "topics": list(self.topics),
            "assigned_partitions": list(self.assigned_partitions),
            "processed": self.processed,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "retries": self.retries,
            "waiting_for": self.waiting_for,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_processed_at": _iso(self.last_processed_at),
        }


@dataclass
class _Pending:
    """A message of a batch: a valid event that has a handler."""

    record: Any
    envelope: Envelope
    handler: EventHandler
    request_id: str


# === HELPERS ===
def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _now() -> datetime:
    return datetime.now(UTC)


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to ``MAX_ERROR_CHARS``."""
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def parse_envelope(value: bytes | None) -> Envelope:
    """Decode a message value and check the envelope; raises :class:`InvalidEventError`."""
    if value is None:
        raise InvalidEventError(DeadLetterReason.INVALID_JSON, "message has no value")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(DeadLetterReason.INVALID_JSON, f"not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE,
            f"value is a JSON {type(event).__name__}, not an object",
        )
    raw_id = event.get("event_id")
    if not isinstance(raw_id, str):
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "event_id is missing")
    try:
        event_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidEventError(
            DeadLetterReason.INVALID_ENVELOPE, f"event_id is not a UUID: {raw_id[:100]!r}"
        ) from exc
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidEventError(DeadLetterReason.INVALID_ENVELOPE, "event_type is missing")
    return Envelope(event_id=event_id, event_type=event_type, event=event)


def is_database_unavailable(exc: BaseException) -> bool:
    """
    True when ``exc`` (or an exception it was raised from) says the database could not be
    reached: an invalidated connection, a pool timeout, or a connection-class SQLSTATE.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATE_PREFIXES):
            return True
        orig = getattr(current, "orig", None)
        pending.extend(
            [
                current.__cause__,
                current.__context__,
                orig if isinstance(orig, BaseException) else None,
            ]
        )
    return False


def _publishers_verifier(
    settings: ServiceSettings, topics: Sequence[str], publishers: Mapping[str, str]
) -> EventVerifier:
    """The verifier of the topics' publishers; raises when one has no publisher or no keys."""
    unowned = [topic for topic in topics if not publishers.get(topic)]
    if unowned:
        raise ValueError(f"No publisher given for topic(s) {', '.join(unowned)}")
    sources = sorted({publishers[topic] for topic in topics})
    untrusted = [source for source in sources if source not in settings.event_trusted_jwks]
    if untrusted:
        raise ValueError(
            f"EVENT_TRUSTED_JWKS has no public keys of {', '.join(untrusted)}: their events "
            "could not be verified"
        )
    return EventVerifier({source: settings.event_trusted_jwks[source] for source in sources})


def _retry_errors_except(*excluded: type[Exception]) -> retry_if_exception:
    """
    Retry on any ``Exception`` except ``excluded``. Never on ``CancelledError`` (a
    ``BaseException``), which tenacity's ``retry_if_not_exception_type`` would retry.
    """
    return retry_if_exception(
        lambda exc: isinstance(exc, Exception) and not isinstance(exc, excluded)
    )


def _request_id(record: Any, envelope: Envelope | None) -> str:
    """The request id of a message: its x-request-id header, else the event id, else a new one."""
    header_id = _header(record, REQUEST_ID_HEADER)
    if header_id:
        return accept_request_id(header_id)
    if envelope is not None:
        return str(envelope.event_id)
    return accept_request_id(None)


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == name and value is not None:
            text: str = value.decode("utf-8", errors="replace")
            return text
    return None


# === REBALANCE LISTENER ===
class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the consumer loop that its fetched batch may belong to another member now."""

    def __init__(self, owner: "IdempotentConsumer") -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._owner._generation += 1
        self._owner.metrics.revoked(revoked)
        if revoked:
            logger.info("Partitions revoked: %s", _partition_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.status.assigned_partitions = _partition_names(assigned)
        logger.info("Partitions assigned: %s", self._owner.status.assigned_partitions)


def _partition_names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)


# === CONSUMER ===
class IdempotentConsumer:
    """
    Consumes ``topics`` in consumer group ``group_id`` and applies each event exactly once in
    effect (see the module docstring). ``handlers`` maps an ``event_type`` (looked up first) or
    a topic name to ``async handler(session, event)``; the handler must do all its work in
    ``session`` and must not commit it.

    In an app's lifespan: ``await consumer.start()`` after the database is up, and
    ``await consumer.stop()`` before it is disposed. ``start()`` returns at once; the consumer
    connects in the background (and keeps trying while the broker is down).
    ``publishers`` maps every topic to the service that owns it: only that service's signed
    messages are applied (its public keys: EVENT_TRUSTED_JWKS).
    ``consumer_options`` are extra ``AIOKafkaConsumer`` arguments; ``producer_options`` extra
    arguments of :func:`lkern_common.kafka.producer.create_producer` for the producer that
    publishes to the dead-letter topic (made when first needed).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        db: Database,
        *,
        topics: Sequence[str],
        group_id: str,
        handlers: Mapping[str, EventHandler],
        dead_letter_topic: str,
        publishers: Mapping[str, str],
        consumer_options: Mapping[str, Any] | None = None,
        producer_options: Mapping[str, Any] | None = None,
        inbox_cleanup_interval_s: float = INBOX_CLEANUP_INTERVAL_S,
    ) -> None:
        if not topics:
            raise ValueError("IdempotentConsumer needs at least one topic")
        if not handlers:
            raise ValueError("IdempotentConsumer needs at least one handler")
        if dead_letter_topic in topics:
            raise ValueError(f"The dead-letter topic {dead_letter_topic!r} cannot be consumed")
        self._publishers = dict(publishers)
        self._verifier = _publishers_verifier(settings, topics, self._publishers)
        self._settings = settings
        self._db = db
        self._topics = list(topics)
        self._group_id = group_id
        self._handlers = dict(handlers)
        self._dead_letter_topic = dead_letter_topic
        self._consumer_options = dict(consumer_options or {})
        self._producer_options = dict(producer_options or {})
        self._cleanup_interval_s = inbox_cleanup_interval_s
        self._max_attempts = settings.kafka_consumer_max_attempts
        self._backoff_s = settings.kafka_consumer_retry_backoff_ms / 1000
        self._backoff_max_s = max(settings.kafka_consumer_retry_backoff_max_ms / 1000, 0.0)
        self.status = ConsumerStatus(group_id=group_id, topics=list(topics))
        self.metrics = ConsumerMetrics(group_id)  # docs/observability.md
        self._consumer: Any = None
        self._producer: Any = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        # Bumped on every revocation: a fetched batch of an older generation is abandoned.
        self._generation = 0

    # --- lifecycle ---
    async def start(self) -> None:
        """Start consuming in a background task (and the inbox cleanup, when retention is on)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name=f"kafka-consumer-{self._group_id}")
        if self._settings.kafka_inbox_retention_days > 0:
            self._cleanup_task = asyncio.create_task(
                self._cleanup_loop(), name=f"inbox-cleanup-{self._group_id}"
            )

    async def stop(self, grace_s: float = STOP_TIMEOUT_S) -> None:
        """
        Stop: the message being applied is finished and its offset committed, a retry wait is
        cut short (that message stays uncommitted), then the consumer leaves the group. After
        ``grace_s`` seconds the loop is cancelled (its open transaction rolls back).
        """
        self._stopping.set()
        if self.running:
            self.status.state = "stopping"
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup_task
            self._cleanup_task = None
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            logger.warning("Kafka consumer did not stop within %.0f s: cancelling it", grace_s)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def running(self) -> bool:
        """True while the consumer task lives."""
        return self._task is not None and not self._task.done()

    def readiness_check(self) -> ReadinessCheck:
        """Readiness check (``add_readiness_check``): ok while it runs; details: status."""

        async def check() -> CheckResult:
            return CheckResult(ok=self.running, details=self.status.as_dict())

        return check

    # --- main loop ---
    async def run(self) -> None:
        """Consume until ``stop()``: reconnects after broker faults, never ends on its own."""
        try:
            while not self._stopping.is_set():
                try:
                    await self._connect()
                    self.status.state = "running"
                    await self._consume()
                except _StopRequested:
                    break
                except Exception as exc:
                    logger.exception("Kafka consumer failed; restarting its client")
                    self._record_error(exc)
                    await self._close_clients()
                    try:
                        await self._sleep(CONNECT_RETRY_MAX_S / 2)
                    except _StopRequested:
                        break
        finally:
            self.status.state = "stopping"
            await self._close_clients()
            self.status.state = "stopped"
            self.status.assigned_partitions = []
            logger.info("Kafka consumer of group %s stopped", self._group_id)

    async def _connect(self) -> None:
        self.status.state = "connecting"
        retrying = AsyncRetrying(
            stop=stop_never,
            retry=_retry_errors_except(_StopRequested),
            wait=wait_exponential(multiplier=0.5, max=CONNECT_RETRY_MAX_S),
            sleep=self._sleep,
            before_sleep=self._before_connect_retry,
            reraise=True,
        )
        await retrying(self._start_consumer)
        self.status.waiting_for = None

    async def _start_consumer(self) -> None:
        settings = self._settings
        # Create the subscribed topics and the dead-letter topic when missing, with the configured
        # partitions: a consumer that starts before the producing service must neither wait for
        # topics that appear later (clusters without auto-creation) nor get broker defaults.
        await ensure_topics(settings, [*self._topics, self._dead_letter_topic])
        options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "client_id": settings.kafka_client_id,
            "group_id": self._group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": settings.kafka_consumer_session_timeout_ms,
            "heartbeat_interval_ms": settings.kafka_consumer_heartbeat_interval_ms,
            "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
            **kafka_security_options(settings),
        }
        options.update(self._consumer_options)
        consumer = AIOKafkaConsumer(**options)
        consumer.subscribe(self._topics, listener=_RebalanceListener(self))
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        logger.info(
            "Kafka consumer of group %s started on %s (topics %s)",
            self._group_id,
            settings.kafka_bootstrap_servers,
            ", ".join(self._topics),
        )

    def _before_connect_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.waiting_for = "broker"
        if exc is not None:
            self._record_error(exc)
        logger.warning(
            "Kafka consumer cannot connect to %s (attempt %d): %s",
            self._settings.kafka_bootstrap_servers,
            state.attempt_number,
            exc,
        )

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client, what in ((consumer, "consumer"), (producer, "dead-letter producer")):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop(), CLOSE_TIMEOUT_S)
            except Exception as exc:
                logger.warning("Closing the Kafka %s failed: %s", what, exc)

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        """One ``getmany``; returns ``{}`` at once when ``stop()`` is called meanwhile."""
        fetch = asyncio.ensure_future(
            self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS)
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return {}
        batch: dict[TopicPartition, list[Any]] = fetch.result()
        return batch

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            generation = self._generation
            batch = await self._fetch()
            await self.metrics.fetched(self._consumer, batch)
            # First offset of each partition that is not processed yet.
            next_offsets = {tp: records[0].offset for tp, records in batch.items() if records}
            last_offsets = {tp: records[-1].offset for tp, records in batch.items() if records}
            abandoned = False
            for tp, records in batch.items():
                index = 0
                while index < len(records):
                    if self._stopping.is_set():
                        return
                    if self._generation != generation:
                        abandoned = True
                        break
                    # One message, or a run of them in one transaction; raises _StopRequested
                    # when stopped.
                    index += await self._handle_run(records[index:])
                    next_offset = records[index - 1].offset + 1
                    next_offsets[tp] = next_offset
                    if not await self._commit(tp, next_offset):
                        abandoned = True
                        break
                if abandoned:
                    break
            if abandoned:
                self._rewind(next_offsets, last_offsets)

    def _rewind(
        self, next_offsets: dict[TopicPartition, int], last_offsets: dict[TopicPartition, int]
    ) -> None:
        """
        After a batch was abandoned (rebalance, failed commit), move each partition this member
        still owns back to its first unprocessed message, so that nothing fetched is skipped.
        Partitions now owned by another member resume there from the committed offset.
        """
        assigned = self._consumer.assignment()
        for tp, offset in next_offsets.items():
            if offset <= last_offsets[tp] and tp in assigned:
                with contextlib.suppress(IllegalStateError):
                    self._consumer.seek(tp, offset)

    async def _commit(self, tp: TopicPartition, offset: int) -> bool:
        """Commit ``offset`` as the next one to read; False when the group moved on."""
        try:
            await self._consumer.commit({tp: offset})
            self.metrics.committed(tp, offset, self._consumer.highwater(tp))
        except (CommitFailedError, IllegalStateError) as exc:
            logger.warning(
                "Offset %d of %s[%d] not committed (group rebalanced): %s",
                offset,
                tp.topic,
                tp.partition,
                exc,
            )
            return False
        except KafkaError as exc:
            # The effect is committed in the database; a redelivery is skipped by the inbox.
            logger.warning(
                "Offset %d of %s[%d] not committed: %s", offset, tp.topic, tp.partition, exc
            )
            self._record_error(exc)
            return False
        return True

    # --- runs of messages (one transaction) ---
    async def _handle_run(self, records: Sequence[Any]) -> int:
        """
        Handle the leading messages of ``records`` (one partition, in order): a run of valid
        events in one transaction, else the first message alone. Returns how many were handled.
        """
        run = self._leading_run(records)
        if len(run) <= 1:
            await self._handle_record(records[0])
            return 1
        started = time.perf_counter()
        try:
            outcomes = await self._apply_batch(run)
        except _BatchHandlerFailed as failed:
            if is_database_unavailable(failed.error) or not await self._database_answers():
                await self._handle_record(records[0])  # waits for the database
                return 1
            handled = 0
            if failed.index > 0:  # the events before the failing one, as a shorter run
                handled = await self._handle_run(records[: failed.index])
                if handled < failed.index:
                    return handled
            await self._handle_record(records[failed.index], first_failure=failed.error)
            return failed.index + 1
        except (_StopRequested, asyncio.CancelledError):
            raise
        except Exception:  # e.g. the database went away: the one-message path decides
            await self._handle_record(records[0])
            return 1
        self._count_batch(run, outcomes)
        events = [(pending.record.topic, pending.envelope.event) for pending in run]
        self.metrics.applied(events, outcomes, time.perf_counter() - started)
        return len(run)

    def _envelope(self, record: Any) -> Envelope:
        """
        The checked envelope of a message: signed by its topic's publisher, then parsed.
        Raises :class:`InvalidEventError` (``bad-signature`` first).
        """
        signature = next(
            (value for name, value in record.headers or () if name == SIGNATURE_HEADER), None
        )
        try:
            self._verifier.verify(self._publishers[record.topic], record.value, signature)
        except BadSignatureError as exc:
            raise InvalidEventError(DeadLetterReason.BAD_SIGNATURE, str(exc)) from None
        return parse_envelope(record.value)

    def _leading_run(self, records: Sequence[Any]) -> list[_Pending]:
        """The leading messages that are valid events with a handler (none after the first not)."""
        run: list[_Pending] = []
        for record in records:
            try:
                envelope = self._envelope(record)
            except InvalidEventError:
                break
            handler = self._handlers.get(envelope.event_type) or self._handlers.get(record.topic)
            if handler is None:
                break
            run.append(_Pending(record, envelope, handler, _request_id(record, envelope)))
        return run

    async def _apply_batch(self, run: Sequence[_Pending]) -> list[Outcome]:
        """
        One transaction for the run: claim every event id in the inbox with one statement, run
        the handler of each newly claimed event in order, commit. A handler error rolls it all
        back and raises :class:`_BatchHandlerFailed` with the failing message's index.
        """
        async with self._db.transaction() as session:
            claimed = set(
                await session.scalars(
                    pg_insert(InboxEvent)
                    .values(
                        [
                            {
                                "event_id": pending.envelope.event_id,
                                "topic": pending.record.topic,
                                "event_type": pending.envelope.event_type,
                                "kafka_partition": pending.record.partition,
                                "kafka_offset": pending.record.offset,
                            }
                            for pending in run
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=[InboxEvent.event_id])
                    .returning(InboxEvent.event_id)
                )
            )
            outcomes: list[Outcome] = []
            for index, pending in enumerate(run):
                if pending.envelope.event_id not in claimed:
                    outcomes.append(Outcome.DUPLICATE)
                    continue
                claimed.discard(pending.envelope.event_id)  # a second copy in the run: duplicate
                token = request_id_var.set(pending.request_id)
                try:
                    await pending.handler(session, orjson.loads(pending.record.value))
                except Exception as exc:
                    raise _BatchHandlerFailed(index, exc) from exc
                finally:
                    request_id_var.reset(token)
                outcomes.append(Outcome.APPLIED)
        return outcomes

    def _count_batch(self, run: Sequence[_Pending], outcomes: Sequence[Outcome]) -> None:
        applied = outcomes.count(Outcome.APPLIED)
        duplicates = len(outcomes) - applied
        self.status.processed += applied
        self.status.duplicates += duplicates
        self.status.last_processed_at = _now()
        for pending, outcome in zip(run, outcomes, strict=True):
            logger.debug(
                "%s event %s (%s) from %s[%d]@%d",
                "Applied" if outcome is Outcome.APPLIED else "Skipped duplicate",
                pending.envelope.event_id,
                pending.envelope.event_type,
                pending.record.topic,
                pending.record.partition,
                pending.record.offset,
            )
        first, last = run[0].record, run[-1].record
        logger.info(
            "Applied %d events from %s[%d]@%d..%d in one transaction (%d duplicates skipped)",
            applied,
            first.topic,
            first.partition,
            first.offset,
            last.offset,
            duplicates,
        )

    # --- one message ---
    async def _handle_record(
        self, record: Any, *, first_failure: Exception | None = None
    ) -> Outcome:
        """
        Apply, skip or dead-letter one message. Raises ``_StopRequested`` when interrupted.
        ``first_failure``: the handler already failed once for it (in a batch); that counts as
        its first attempt.
        """
        try:
            envelope: Envelope | None = self._envelope(record)
            invalid: InvalidEventError | None = None
        except InvalidEventError as exc:
            envelope, invalid = None, exc
        token = request_id_var.set(_request_id(record, envelope))
        try:
            if envelope is None:
                assert invalid is not None
                return await self._dead_letter(record, invalid.reason, str(invalid), attempts=0)
            handler = self._handlers.get(envelope.event_type) or self._handlers.get(record.topic)
            if handler is None:
                return await self._dead_letter(
                    record,
                    DeadLetterReason.NO_HANDLER,
                    f"no handler for event_type {envelope.event_type!r} on topic {record.topic!r}",
                    attempts=0,
                )
            attempts = _Attempts(count=0 if first_failure is None else 1)
            started = time.perf_counter()
            try:
                outcome = await self._apply_with_retries(
                    record, envelope, handler, attempts, first_failure
                )
            except (_StopRequested, asyncio.CancelledError):
                raise
            except InvalidEventError as refused:
                # The handler found the event unusable (e.g. a bad snapshot): no retry.
                return await self._dead_letter(
                    record, refused.reason, str(refused), attempts=attempts.count
                )
            except Exception as exc:
                logger.error(
                    "Event %s (%s) failed %d times, sending it to %s: %s",
                    envelope.event_id,
                    envelope.event_type,
                    attempts.count,
                    self._dead_letter_topic,
                    error_text(exc),
                )
                return await self._dead_letter(
                    record,
                    DeadLetterReason.HANDLER_FAILED,
                    error_text(exc),
                    attempts=attempts.count,
                )
            self.status.last_processed_at = _now()
            self.metrics.applied(
                [(record.topic, envelope.event)], [outcome], time.perf_counter() - started
            )
            if outcome is Outcome.DUPLICATE:
                self.status.duplicates += 1
                logger.info(
                    "Event %s (%s) already applied: duplicate delivery skipped",
                    envelope.event_id,
                    envelope.event_type,
                )
            else:
                self.status.processed += 1
                logger.info(
                    "Applied event %s (%s) from %s[%d]@%d",
                    envelope.event_id,
                    envelope.event_type,
                    record.topic,
                    record.partition,
                    record.offset,
                )
            return outcome
        finally:
            request_id_var.reset(token)

    async def _apply_with_retries(
        self,
        record: Any,
        envelope: Envelope,
        handler: EventHandler,
        attempts: _Attempts,
        first_failure: Exception | None = None,
    ) -> Outcome:
        """
        Handler errors: ``max_attempts`` attempts with backoff, then the last error is raised.
        Database unreachable: retried without limit and without counting attempts.
        ``first_failure`` is the error of a first attempt made elsewhere (in a batch).
        """
        earlier_failure = first_failure

        async def attempt() -> Outcome:
            nonlocal earlier_failure
            if earlier_failure is not None:  # attempt 1 ran in a batch: its outcome
                failure, earlier_failure = earlier_failure, None
                raise failure
            try:
                return await self._apply_once(record, envelope, handler, attempts)
            except InvalidEventError:
                raise
            except Exception as exc:
                if is_database_unavailable(exc) or not await self._database_answers():
                    raise _DatabaseUnavailable(error_text(exc)) from exc
                raise

        handler_retries = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            retry=_retry_errors_except(_DatabaseUnavailable, _StopRequested, InvalidEventError),
            wait=wait_exponential(multiplier=self._backoff_s, max=self._backoff_max_s),
            sleep=self._sleep,
            before_sleep=self._before_handler_retry,
            reraise=True,
        )
        database_waits = AsyncRetrying(
            stop=stop_never,
            retry=retry_if_exception_type(_DatabaseUnavailable),
            wait=wait_exponential(
                multiplier=max(self._backoff_s, MIN_BACKOFF_S), max=DATABASE_RETRY_MAX_S
            ),
            sleep=self._sleep,
            before_sleep=self._before_database_retry,
            reraise=True,
        )
        try:
            outcome: Outcome = await database_waits(handler_retries, attempt)
        finally:
            self.status.waiting_for = None
        return outcome

    async def _apply_once(
        self, record: Any, envelope: Envelope, handler: EventHandler, attempts: _Attempts
    ) -> Outcome:
        """One transaction: claim the event id in the inbox, run the handler, commit."""
        async with self._db.transaction() as session:
            claimed = await session.scalar(
                pg_insert(InboxEvent)
                .values(
                    event_id=envelope.event_id,
                    topic=record.topic,
                    event_type=envelope.event_type,
                    kafka_partition=record.partition,
                    kafka_offset=record.offset,
                )
                .on_conflict_do_nothing(index_elements=[InboxEvent.event_id])
                .returning(InboxEvent.event_id)
            )
            if claimed is None:
                return Outcome.DUPLICATE
            attempts.count += 1
            # A fresh copy per attempt: a handler that changed the dict cannot affect a retry.
            await handler(session, orjson.loads(record.value))
        return Outcome.APPLIED

    async def _database_answers(self) -> bool:
        try:
            return await asyncio.wait_for(self._db.ping(), DATABASE_PING_TIMEOUT_S)
        except TimeoutError:
            return False

    def _before_handler_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.retries += 1
        self.metrics.retried()
        if exc is not None:
            self._record_error(exc)
        logger.warning(
            "Handler failed (attempt %d of %d), retrying in %.2f s: %s",
            state.attempt_number,
            self._max_attempts,
            state.upcoming_sleep,
            error_text(exc) if exc is not None else "",
        )

    def _before_database_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.waiting_for = "database"
        if exc is not None:
            self._record_error(exc)
        logger.warning(
            "Database unavailable while applying an event (wait %d), retrying in %.2f s: %s",
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    # --- dead-letter topic ---
    async def _dead_letter(
        self, record: Any, reason: DeadLetterReason, error: str, attempts: int
    ) -> Outcome:
        """Publish ``record`` to the dead-letter topic; retries until it worked or stop()."""
        headers = [
            (key, value)
            for key, value in (record.headers or ())
            if not key.lower().startswith(DLQ_HEADER_PREFIX)
        ]
        added = {
            "x-dlq-reason": reason.value,
            "x-dlq-error": error[:MAX_ERROR_CHARS],
            "x-dlq-attempts": str(attempts),
            "x-dlq-original-topic": record.topic,
            "x-dlq-original-partition": str(record.partition),
            "x-dlq-original-offset": str(record.offset),
            "x-dlq-original-timestamp": str(record.timestamp),
            "x-dlq-consumer-group": self._group_id,
            "x-dlq-failed-at": _now().isoformat(),
        }
        headers.extend((key, value.encode("utf-8")) for key, value in added.items())
        if reason is not DeadLetterReason.HANDLER_FAILED:
            logger.error(
                "Message %s[%d]@%d refused (%s: %s): sending it to %s",
                record.topic,
                record.partition,
                record.offset,
                reason.value,
                error,
                self._dead_letter_topic,
            )
        retrying = AsyncRetrying(
            stop=stop_never,
            retry=_retry_errors_except(_StopRequested),
            wait=wait_exponential(
                multiplier=max(self._backoff_s, MIN_BACKOFF_S), max=DEAD_LETTER_RETRY_MAX_S
            ),
            sleep=self._sleep,
            before_sleep=self._before_dead_letter_retry,
            reraise=True,
        )
        try:
            await retrying(self._publish_dead_letter, record.key, record.value, headers)
        finally:
            self.status.waiting_for = None
        self.status.dead_lettered += 1
        self.metrics.dead_lettered(record.topic)
        self._record_error(f"{reason.value}: {error}")
        return Outcome.DEAD_LETTERED

    async def _publish_dead_letter(
        self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if self._producer is None:
            producer = create_producer(
                self._settings,
                client_id=f"{self._settings.kafka_client_id}-dlq",
                **self._producer_options,
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        await self._producer.send_and_wait(
            self._dead_letter_topic, value=value, key=key, headers=headers
        )

    def _before_dead_letter_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.waiting_for = "dead-letter topic"
        if exc is not None:
            self._record_error(exc)
        logger.error(
            "Publishing to the dead-letter topic %s failed (attempt %d), retrying in %.2f s: %s",
            self._dead_letter_topic,
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    # --- inbox retention ---
    async def _cleanup_loop(self) -> None:
        days = self._settings.kafka_inbox_retention_days
        while not self._stopping.is_set():
            try:
                await purge_inbox(self._db, days)
            except Exception as exc:
                logger.warning("Inbox cleanup failed (will retry): %s", exc)
            try:
                await self._sleep(self._cleanup_interval_s)
            except _StopRequested:
                return

    # --- helpers ---
    async def _sleep(self, seconds: float) -> None:
        """Sleep, or raise ``_StopRequested`` as soon as ``stop()`` is called."""
        if self._stopping.is_set():
            raise _StopRequested
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise _StopRequested

    def _record_error(self, error: BaseException | str) -> None:
        self.status.last_error = error if isinstance(error, str) else error_text(error)
        self.status.last_error_at = _now()
