"""
================================================================
FILE: dead_letter.py
PATH: /libs/lkern-common/src/lkern_common/kafka/dead_letter.py
DESCRIPTION: Dead-lettering that never blocks: the whole message, or a form that fits
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

A refused message is copied to the service's dead-letter topic (e.g. ``lkern.orders.dlq``):
key and value byte for byte, the original headers (``x-request-id``, ``x-lkern-signature``
among them) and the ``x-dlq-*`` headers below. The copy is larger than the original, so a
message near the size limit cannot be copied whole; without care its publish fails the same
way for ever and the consumer stops (issue 14). So a dead letter is sent in the first of three
forms that fits and that the broker takes:

1. **whole**: the original key, value and headers plus the ``x-dlq-*`` headers, when its
   estimated size is at most ``KAFKA_DEAD_LETTER_MAX_BYTES`` (default 1,000,000: under the
   producer's 1 MiB request limit and Apache Kafka's default ``message.max.bytes``);
2. **cut**: the value cut to what fits (its first bytes), the error text cut to 500
   characters, original headers kept while they fit in a quarter of the limit (the names of
   those left out in ``x-dlq-dropped-headers``), a key longer than 1 KiB cut, and
   ``x-dlq-form: cut`` with ``x-dlq-original-value-bytes``. The original stays readable at
   ``x-dlq-original-topic`` / ``-partition`` / ``-offset`` while the topic keeps it (its
   retention); ``lkern dlq replay`` re-publishes it from there;
3. **bare**: the ``x-dlq-*`` headers only (error cut to 200 characters, empty value), for a
   broker whose limit is below ours and refused the cut form.

A form the broker (or the client) refuses as too large moves to the next form at once. Any other
failure (broker unreachable, a timeout, no permission) is retried without limit with backoff
(the consumer could not fetch either); the consumer shows it (``waiting_for`` "dead-letter
topic") and its stall detection makes ``/ready`` say so (:mod:`lkern_common.kafka.progress`).

Headers added (UTF-8 strings):

========================== ================================================================
``x-dlq-reason``           ``bad-signature``, ``invalid-json``, ``invalid-envelope``,
                           ``no-handler``, ``handler-failed``
``x-dlq-error``            the error text (exception type and message, at most 2000 chars)
``x-dlq-attempts``         times the handler ran (0 when it was refused before the handler)
``x-dlq-original-topic``   topic, ``…-partition``, ``…-offset``, ``…-timestamp`` (ms) of
                           the original message
``x-dlq-consumer-group``   the group that gave up on it
``x-dlq-failed-at``        when, ISO 8601 UTC
``x-dlq-form``             ``whole``, ``cut`` or ``bare``
========================== ================================================================
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from tenacity import RetryCallState

from lkern_common.kafka.envelope import MAX_ERROR_CHARS, DeadLetterReason
from lkern_common.kafka.producer import create_producer
from lkern_common.kafka.retries import DEAD_LETTER_RETRY_MAX_S, Sleep, forever
from lkern_common.settings import ServiceSettings

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DLQ_HEADER_PREFIX = "x-dlq-"
REASON_HEADER = "x-dlq-reason"
ERROR_HEADER = "x-dlq-error"
FORM_HEADER = "x-dlq-form"
ORIGINAL_TOPIC_HEADER = "x-dlq-original-topic"
ORIGINAL_PARTITION_HEADER = "x-dlq-original-partition"
ORIGINAL_OFFSET_HEADER = "x-dlq-original-offset"
FAILED_AT_HEADER = "x-dlq-failed-at"
ORIGINAL_VALUE_BYTES_HEADER = "x-dlq-original-value-bytes"
DROPPED_HEADERS_HEADER = "x-dlq-dropped-headers"
WHOLE, CUT, BARE = "whole", "cut", "bare"
CUT_ERROR_CHARS = 500
BARE_ERROR_CHARS = 200
CUT_KEY_BYTES = 1024
BARE_KEY_BYTES = 256
# Slack for the variable-length integers of the record format (estimates are upper bounds).
SIZE_MARGIN_BYTES = 64
# Errors that say "this message is too large": the next, smaller form is tried at once.
TOO_LARGE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)

Headers = list[tuple[str, bytes]]


# === DEAD LETTERS ===
@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter message, ready to send."""

    key: bytes | None
    value: bytes | None  # None only for a whole copy of a message without a value
    headers: Headers
    form: str

    @property
    def size(self) -> int:
        return message_size(self.key, self.value, self.headers)


def message_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """Upper bound of a record's size, as the producer measures it against its request limit."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
    return size


def dlq_headers(
    record: Any,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    group_id: str,
    failed_at: datetime | None = None,
) -> dict[str, str]:
    """The ``x-dlq-*`` headers of a dead letter of ``record`` (form not included)."""
    return {
        REASON_HEADER: reason.value,
        ERROR_HEADER: error[:MAX_ERROR_CHARS],
        "x-dlq-attempts": str(attempts),
        ORIGINAL_TOPIC_HEADER: record.topic,
        ORIGINAL_PARTITION_HEADER: str(record.partition),
        ORIGINAL_OFFSET_HEADER: str(record.offset),
        "x-dlq-original-timestamp": str(record.timestamp),
        "x-dlq-consumer-group": group_id,
        FAILED_AT_HEADER: (failed_at or datetime.now(UTC)).isoformat(),
    }


def _encoded(added: Mapping[str, str]) -> Headers:
    return [(name, value.encode("utf-8")) for name, value in added.items()]


def _original_headers(record: Any) -> Headers:
    """The message's headers without ``x-dlq-*`` ones (a dead letter replayed and refused again)."""
    return [
        (name, value if value is not None else b"")
        for name, value in (record.headers or ())
        if not name.lower().startswith(DLQ_HEADER_PREFIX)
    ]


def whole_dead_letter(record: Any, added: Mapping[str, str]) -> DeadLetter:
    """Form 1: the original key, value and headers plus ``added``."""
    headers = [*_original_headers(record), *_encoded({**added, FORM_HEADER: WHOLE})]
    return DeadLetter(record.key, record.value, headers, WHOLE)


def cut_dead_letter(record: Any, added: Mapping[str, str], max_bytes: int) -> DeadLetter:
    """Form 2: value cut to fit ``max_bytes``, large headers left out (see the module doc)."""
    value = record.value or b""
    kept: Headers = []
    dropped: list[str] = []
    header_budget = max_bytes // 4
    for name, header in _original_headers(record):
        if len(name) + len(header) <= header_budget:
            kept.append((name, header))
            header_budget -= len(name) + len(header)
        else:
            dropped.append(name)
    marks = {
        **added,
        ERROR_HEADER: added[ERROR_HEADER][:CUT_ERROR_CHARS],
        FORM_HEADER: CUT,
        ORIGINAL_VALUE_BYTES_HEADER: str(len(value)),
    }
    if dropped:
        marks[DROPPED_HEADERS_HEADER] = ",".join(dropped)[:CUT_ERROR_CHARS]
    key = None if record.key is None else record.key[:CUT_KEY_BYTES]
    headers = [*kept, *_encoded(marks)]
    room = max_bytes - message_size(key, b"", headers) - SIZE_MARGIN_BYTES
    return DeadLetter(key, value[: max(room, 0)], headers, CUT)


def bare_dead_letter(record: Any, added: Mapping[str, str]) -> DeadLetter:
    """Form 3: the ``x-dlq-*`` headers only, with an empty value."""
    marks = {
        **added,
        ERROR_HEADER: added[ERROR_HEADER][:BARE_ERROR_CHARS],
        FORM_HEADER: BARE,
        ORIGINAL_VALUE_BYTES_HEADER: str(len(record.value or b"")),
    }
    key = None if record.key is None else record.key[:BARE_KEY_BYTES]
    return DeadLetter(key, b"", _encoded(marks), BARE)


def dead_letter_forms(record: Any, added: Mapping[str, str], max_bytes: int) -> list[DeadLetter]:
    """The forms to try in order: whole when it fits (else cut), then bare."""
    whole = whole_dead_letter(record, added)
    first = whole if whole.size <= max_bytes else cut_dead_letter(record, added, max_bytes)
    return [first, bare_dead_letter(record, added)]


# === PUBLISHER ===
class DeadLetterPublisher:
    """
    Sends dead letters to one topic with a producer of its own (made when first needed; see the
    module doc for the forms and the retries). ``waiting(error)`` is called before each retry
    wait, ``done()`` once a dead letter was sent.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        topic: str,
        group_id: str,
        *,
        producer_options: Mapping[str, Any] | None = None,
        backoff_s: float,
        sleep: Sleep,
        waiting: Callable[[BaseException | None], None],
    ) -> None:
        self.topic = topic
        self._settings = settings
        self._group_id = group_id
        self._producer_options = dict(producer_options or {})
        self.max_bytes = min(
            settings.kafka_dead_letter_max_bytes,
            int(self._producer_options.get("max_request_size", 1048576)),
        )
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._waiting = waiting
        self._producer: Any = None
        self.forms_sent: dict[str, int] = {WHOLE: 0, CUT: 0, BARE: 0}

    async def publish(
        self, record: Any, reason: DeadLetterReason, error: str, attempts: int
    ) -> DeadLetter:
        """Send a dead letter of ``record``; returns the form sent. Raises ``StopRequested``."""
        added = dlq_headers(record, reason, error, attempts, self._group_id)
        forms = dead_letter_forms(record, added, self.max_bytes)
        for index, letter in enumerate(forms):
            last = index == len(forms) - 1
            try:
                await self._send_retrying(letter, give_up_on_size=not last)
            except TOO_LARGE_ERRORS as exc:
                logger.error(
                    "Dead letter of %s[%d]@%d refused as too large in its %s form (%d bytes): %s;"
                    " sending its %s form",
                    record.topic,
                    record.partition,
                    record.offset,
                    letter.form,
                    letter.size,
                    exc,
                    forms[index + 1].form,
                )
                continue
            self.forms_sent[letter.form] += 1
            if letter.form != WHOLE:
                logger.warning(
                    "Message %s[%d]@%d (%d bytes) dead-lettered in its %s form (%d bytes); the "
                    "original stays at that offset",
                    record.topic,
                    record.partition,
                    record.offset,
                    len(record.value or b""),
                    letter.form,
                    letter.size,
                )
            return letter
        raise AssertionError("unreachable: the bare form is retried without limit")

    async def _send_retrying(self, letter: DeadLetter, *, give_up_on_size: bool) -> None:
        retrying = forever(
            self._backoff_s,
            DEAD_LETTER_RETRY_MAX_S,
            sleep=self._sleep,
            before_sleep=self._before_retry,
            never_retry=TOO_LARGE_ERRORS if give_up_on_size else (),
        )
        await retrying(self._send, letter)

    async def _send(self, letter: DeadLetter) -> None:
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
            self.topic, value=letter.value, key=letter.key, headers=letter.headers
        )

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._waiting(exc)
        logger.error(
            "Publishing to the dead-letter topic %s failed (attempt %d), retrying in %.2f s: %s",
            self.topic,
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    async def close(self, timeout_s: float) -> None:
        """Stop the producer (when one was made)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await asyncio.wait_for(producer.stop(), timeout_s)
        except Exception as exc:
            logger.warning("Closing the Kafka dead-letter producer failed: %s", exc)
