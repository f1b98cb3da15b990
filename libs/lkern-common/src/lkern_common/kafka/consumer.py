"""
================================================================
FILE: consumer.py
PATH: /libs/lkern-common/src/lkern_common/kafka/consumer.py
DESCRIPTION: Idempotent Kafka consumer: the loop (fetch, commit, rebalance, readiness)
VERSION: v2.3.0
UPDATED: 2026-12-02 14:05:00
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
   duplicate, or published to the dead-letter topic. Dead-lettering never blocks on a message's
   size: a copy too large for the topic is sent cut, with where the original is
   (:mod:`lkern_common.kafka.dead_letter`). A dead-letter publish that fails for another reason
   (broker unreachable) is retried until it succeeds or the consumer stops; an unfinished
   message is never committed, so the next member of the group receives it again.
6. A consumer with lag that makes no progress for ``KAFKA_CONSUMER_STALL_SECONDS`` is stalled:
   its readiness check fails with the reason (:mod:`lkern_common.kafka.progress`).

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

Dead-letter message format (topic given by the service, e.g. ``lkern.orders.dlq``): the
original key, value and headers plus ``x-dlq-*`` headers (reason, error, attempts, original
topic/partition/offset/timestamp, group, time, form); see :mod:`lkern_common.kafka.dead_letter`.
``lkern dlq list`` and ``lkern dlq replay`` read it (docs/events.md).

Modules: this one is the loop (connect, fetch, commit, rebalance, stop, readiness);
:mod:`~lkern_common.kafka.batch` applies the fetched messages (runs in one transaction, one
message with retries); :mod:`~lkern_common.kafka.retries` the retry policies (tenacity);
:mod:`~lkern_common.kafka.dead_letter` the dead letters; :mod:`~lkern_common.kafka.progress`
the status, lag and stall detection; :mod:`~lkern_common.kafka.envelope` the envelope. The
names services import are re-exported here. Metrics (lag per partition here; outcomes, retries,
batches and event latency in batch.py): :mod:`lkern_common.metrics.consumer`.

Dead-lettered events are not recorded in the inbox, so republishing one (same ``event_id``)
applies it. Nothing but :meth:`IdempotentConsumer.stop` ends the consumer: a broker that is
down is reconnected to, an unexpected error restarts the Kafka client after a backoff.
While handling a message, the request id is the message's ``x-request-id`` header (else the
event id), so the handler's log lines carry it.
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from tenacity import RetryCallState

from lkern_common.database import Database, is_database_unavailable
from lkern_common.event_signing import EventVerifier
from lkern_common.kafka.batch import EventApplier, RetryPolicy
from lkern_common.kafka.dead_letter import DLQ_HEADER_PREFIX, DeadLetterPublisher
from lkern_common.kafka.envelope import (
    MAX_ERROR_CHARS,
    DeadLetterReason,
    Envelope,
    EventHandler,
    InvalidEventError,
    Outcome,
    error_text,
    parse_envelope,
)
from lkern_common.kafka.inbox import purge_inbox
from lkern_common.kafka.progress import ConsumerStatus, ProgressTracker
from lkern_common.kafka.retries import (
    CONNECT_RETRY_MAX_S,
    StopRequested,
    forever,
)
from lkern_common.kafka.security import client_options
from lkern_common.kafka.topics import ensure_topics
from lkern_common.metrics.consumer import ConsumerMetrics
from lkern_common.retrying import StopAwareSleep
from lkern_common.settings import ServiceSettings
from lkern_common.web.health import CheckResult, ReadinessCheck

# The names services and tests import from this module (it was one module before).
__all__ = [
    "DLQ_HEADER_PREFIX",
    "MAX_ERROR_CHARS",
    "ConsumerStatus",
    "DeadLetterReason",
    "Envelope",
    "EventHandler",
    "IdempotentConsumer",
    "InvalidEventError",
    "Outcome",
    "error_text",
    "is_database_unavailable",
    "parse_envelope",
]

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
POLL_TIMEOUT_MS = 1000
# Most messages per fetch, and so per batch (one transaction).
MAX_POLL_RECORDS = 500
STOP_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
INBOX_CLEANUP_INTERVAL_S = 3600.0


# === HELPERS ===
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


def _partition_names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)


# === REBALANCE LISTENER ===
class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the consumer loop that its fetched batch may belong to another member now."""

    def __init__(self, owner: "IdempotentConsumer") -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._owner._generation += 1
        self._owner.status.progress.reset()
        self._owner.metrics.revoked(revoked)
        if revoked:
            logger.info("Partitions revoked: %s", _partition_names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.status.assigned_partitions = _partition_names(assigned)
        self._owner.status.progress.reset()
        logger.info("Partitions assigned: %s", self._owner.status.assigned_partitions)


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
        self._settings = settings
        self._db = db
        self._topics = list(topics)
        self._group_id = group_id
        self._dead_letter_topic = dead_letter_topic
        self._consumer_options = dict(consumer_options or {})
        self._cleanup_interval_s = inbox_cleanup_interval_s
        self.status = ConsumerStatus(
            group_id=group_id,
            topics=list(topics),
            progress=ProgressTracker(settings.kafka_consumer_stall_seconds),
        )
        self.metrics = ConsumerMetrics(group_id)  # lag, docs/observability.md
        self._consumer: Any = None
        self._stopping = asyncio.Event()
        self._sleep = StopAwareSleep(self._stopping, StopRequested)
        self._task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        # Bumped on every revocation: a fetched batch of an older generation is abandoned.
        self._generation = 0
        backoff_s = settings.kafka_consumer_retry_backoff_ms / 1000
        self._dead_letters = DeadLetterPublisher(
            settings,
            dead_letter_topic,
            group_id,
            producer_options=producer_options,
            backoff_s=backoff_s,
            sleep=self._sleep,
            waiting=self._waiting_for_dead_letter_topic,
        )
        self._applier = EventApplier(
            db,
            handlers=handlers,
            verifier=_publishers_verifier(settings, topics, publishers),
            publishers=publishers,
            retry=RetryPolicy(
                max_attempts=settings.kafka_consumer_max_attempts,
                backoff_s=backoff_s,
                backoff_max_s=max(settings.kafka_consumer_retry_backoff_max_ms / 1000, 0.0),
            ),
            dead_letters=self._dead_letters,
            status=self.status,
            sleep=self._sleep,
            group_id=group_id,
        )

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
        """
        Readiness check (``add_readiness_check``): ok while it runs and is not stalled (lag and
        no progress for ``KAFKA_CONSUMER_STALL_SECONDS``; ``stalled`` then says why).
        """

        async def check() -> CheckResult:
            stalled = self.status.stalled_reason()
            return CheckResult(ok=self.running and stalled is None, details=self.status.as_dict())

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
                except StopRequested:
                    break
                except Exception as exc:
                    logger.exception("Kafka consumer failed; restarting its client")
                    self._record_error(exc)
                    await self._close_clients()
                    try:
                        await self._sleep(CONNECT_RETRY_MAX_S / 2)
                    except StopRequested:
                        break
        finally:
            self.status.state = "stopping"
            await self._close_clients()
            self.status.state = "stopped"
            self.status.assigned_partitions = []
            self.status.progress.reset()
            logger.info("Kafka consumer of group %s stopped", self._group_id)

    async def _connect(self) -> None:
        self.status.state = "connecting"
        retrying = forever(
            0.5, CONNECT_RETRY_MAX_S, sleep=self._sleep, before_sleep=self._before_connect_retry
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
            **client_options(settings),
            "group_id": self._group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": settings.kafka_consumer_session_timeout_ms,
            "heartbeat_interval_ms": settings.kafka_consumer_heartbeat_interval_ms,
            "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
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

    def _waiting_for_dead_letter_topic(self, error: BaseException | None) -> None:
        self.status.waiting_for = "dead-letter topic"
        if error is not None:
            self._record_error(error)

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await asyncio.wait_for(consumer.stop(), CLOSE_TIMEOUT_S)
            except Exception as exc:
                logger.warning("Closing the Kafka consumer failed: %s", exc)
        await self._dead_letters.close(CLOSE_TIMEOUT_S)

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
        self._track_fetch(batch)
        return batch

    def _track_fetch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Where each assigned partition stands after a fetch (lag, for stall detection)."""
        for tp in self._consumer.assignment():
            records = batch.get(tp)
            self.status.progress.fetched(
                tp, records[0].offset if records else None, self._consumer.highwater(tp)
            )

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
                    # One message, or a run of them in one transaction; raises StopRequested
                    # when stopped.
                    index += await self._applier.handle_run(records[index:])
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
        self.status.progress.committed(tp, offset)
        self.metrics.committed(tp, offset, self._consumer.highwater(tp))
        return True

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
            except StopRequested:
                return

    # --- helpers ---
    def _record_error(self, error: BaseException | str) -> None:
        self.status.record_error(error if isinstance(error, str) else error_text(error))
