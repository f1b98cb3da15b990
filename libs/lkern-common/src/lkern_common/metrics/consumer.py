"""
================================================================
FILE: consumer.py
PATH: /libs/lkern-common/src/lkern_common/metrics/consumer.py
DESCRIPTION: The figures of one Kafka consumer: outcomes, retries, lag, batches, event latency
VERSION: v1.0.0
UPDATED: 2026-12-02 06:10:00
================================================================

``IdempotentConsumer`` (lkern_common.kafka.consumer) holds one ``ConsumerMetrics`` and calls it
at a few points: a transaction applied (a batch or one message), a message dead-lettered, a
handler retried, an offset committed, a fetch returned, partitions revoked. Everything the
metrics need is computed here, so the consumer's code keeps one line per point.

Lag of a partition = its end (the high watermark of the last fetch) minus the group's next
offset there. It is set after each commit (for the committed partition) and after each fetch
(for this member's partitions that had nothing new), and set to 0 when a partition is revoked:
the gauge takes the highest value over live workers, so only the owner's figure shows.
"""

# === IMPORTS ===
import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from lkern_common.metrics import (
    CONSUMER_APPLY_SECONDS,
    CONSUMER_BATCH_SIZE,
    CONSUMER_EVENTS,
    CONSUMER_LAG,
    CONSUMER_LAST_PROGRESS,
    CONSUMER_RETRIES,
    EVENT_END_TO_END_SECONDS,
)

# === CONSTANTS ===
APPLIED = "applied"
DUPLICATE = "duplicate"
DEAD_LETTERED = "dead_lettered"


# === HELPERS ===
def event_age_seconds(event: dict[str, Any], now: float) -> float | None:
    """Seconds from the event's ``occurred_at`` to ``now`` (None when it has no usable one)."""
    occurred = event.get("occurred_at")
    if not isinstance(occurred, str):
        return None
    try:
        moment = datetime.fromisoformat(occurred)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(now - moment.timestamp(), 0.0)


# === METRICS ===
class ConsumerMetrics:
    """The metric children of one consumer group, and the few calls that record them."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._batch_size = CONSUMER_BATCH_SIZE.labels(group)
        self._apply_seconds = CONSUMER_APPLY_SECONDS.labels(group)
        self._last_progress = CONSUMER_LAST_PROGRESS.labels(group)
        self._retries = CONSUMER_RETRIES.labels(group)

    def applied(
        self, events: Sequence[tuple[str, dict[str, Any]]], outcomes: Sequence[str], seconds: float
    ) -> None:
        """
        One committed transaction: ``events`` are (topic, event) in order, ``outcomes`` each
        one's outcome (``applied`` or ``duplicate``), ``seconds`` the time it took.
        """
        now = time.time()
        applied = 0
        for (topic, event), outcome in zip(events, outcomes, strict=True):
            CONSUMER_EVENTS.labels(self.group, topic, outcome).inc()
            if outcome != APPLIED:
                continue
            applied += 1
            age = event_age_seconds(event, now)
            if age is not None:
                EVENT_END_TO_END_SECONDS.labels(topic).observe(age)
        if applied:
            self._batch_size.observe(applied)
        self._apply_seconds.observe(seconds)
        self._last_progress.set(now)

    def dead_lettered(self, topic: str) -> None:
        """A message went to the dead-letter topic."""
        CONSUMER_EVENTS.labels(self.group, topic, DEAD_LETTERED).inc()
        self._last_progress.set(time.time())

    def retried(self) -> None:
        """A handler attempt failed and will be tried again."""
        self._retries.inc()

    def committed(self, tp: TopicPartition, next_offset: int, highwater: int | None) -> None:
        """The group's offset of ``tp`` is now ``next_offset``; ``highwater`` its end."""
        if highwater is not None:
            self._lag(tp).set(max(highwater - next_offset, 0))

    async def fetched(self, consumer: Any, batch: dict[TopicPartition, list[Any]]) -> None:
        """After a fetch: the lag of this member's partitions that brought nothing new."""
        for tp in consumer.assignment():
            if batch.get(tp):
                continue  # set when its messages are committed
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(IllegalStateError):
                position = await consumer.position(tp)
                self._lag(tp).set(max(highwater - position, 0))

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions moved to another member: it reports their lag from now on."""
        for tp in partitions:
            self._lag(tp).set(0)

    def _lag(self, tp: TopicPartition) -> Any:
        return CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition))
