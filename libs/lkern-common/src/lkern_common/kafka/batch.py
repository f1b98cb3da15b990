"""
================================================================
FILE: batch.py
PATH: /libs/lkern-common/src/lkern_common/kafka/batch.py
DESCRIPTION: Applying fetched messages: runs in one transaction, one message with retries, DLQ
VERSION: v1.2.0
UPDATED: 2026-12-02 13:00:00
================================================================

:class:`EventApplier` is what the consumer loop (:mod:`lkern_common.kafka.consumer`) hands each
partition's fetched messages to. It knows nothing of offsets or the group: it applies, skips or
dead-letters the leading messages and says how many it finished. The rules are in the consumer
module's docstring (signature first, envelope, inbox in the handler's transaction, retries,
database waits, dead-lettering, batches).
"""

# === IMPORTS ===
import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from tenacity import RetryCallState

from lkern_common.database import Database, is_database_unavailable
from lkern_common.event_signing import SIGNATURE_HEADER, BadSignatureError, EventVerifier
from lkern_common.kafka.dead_letter import BARE, CUT, DeadLetterPublisher
from lkern_common.kafka.envelope import (
    DeadLetterReason,
    Envelope,
    EventHandler,
    InvalidEventError,
    Outcome,
    error_text,
    parse_envelope,
    request_id_of,
)
from lkern_common.kafka.inbox import Claim, claim_events
from lkern_common.kafka.progress import ConsumerStatus, now_utc
from lkern_common.kafka.retries import (
    DatabaseUnavailable,
    Sleep,
    StopRequested,
    database_waits,
    handler_retries,
)
from lkern_common.metrics.consumer import ConsumerMetrics
from lkern_common.request_context import request_id_var
from lkern_common.tracing import consume_span

# === LOGGING ===
# Under the consumer's name, as before the split: log filters and alerts keep matching.
logger = logging.getLogger("lkern_common.kafka.consumer")

# === CONSTANTS ===
DATABASE_PING_TIMEOUT_S = 5.0


# === TYPES ===
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


@dataclass
class _Pending:
    """A message of a batch: a valid event that has a handler."""

    record: Any
    envelope: Envelope
    handler: EventHandler
    request_id: str


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing handler is retried (from the KAFKA_CONSUMER_* settings)."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float


def _claim(record: Any, envelope: Envelope) -> Claim:
    """The inbox row of a message about to be applied."""
    return Claim(
        envelope.event_id, record.topic, envelope.event_type, record.partition, record.offset
    )


# === APPLIER ===
class EventApplier:
    """
    Applies one partition's messages in order: a run of valid events in one transaction when
    it can, else one message with retries; dead-letters what can never apply.
    """

    def __init__(
        self,
        db: Database,
        *,
        handlers: Mapping[str, EventHandler],
        verifier: EventVerifier,
        publishers: Mapping[str, str],
        retry: RetryPolicy,
        dead_letters: DeadLetterPublisher,
        status: ConsumerStatus,
        sleep: Sleep,
        group_id: str,
    ) -> None:
        self._db = db
        self._group_id = group_id  # names the consumer's spans (lkern_common.tracing)
        self._handlers = dict(handlers)
        self._verifier = verifier
        self._publishers = dict(publishers)
        self._retry = retry
        self._dead_letters = dead_letters
        self.status = status
        self._sleep = sleep
        self.metrics = ConsumerMetrics(status.group_id)  # docs/observability.md

    # --- runs of messages (one transaction) ---
    async def handle_run(self, records: Sequence[Any]) -> int:
        """
        Handle the leading messages of ``records`` (one partition, in order): a run of valid
        events in one transaction, else the first message alone. Returns how many were handled.
        Raises ``StopRequested`` when the consumer stops meanwhile.
        """
        run = self._leading_run(records)
        if len(run) <= 1:
            await self.handle_record(records[0])
            return 1
        started = time.perf_counter()
        try:
            with consume_span(self._group_id, [pending.record for pending in run]):
                outcomes = await self._apply_batch(run)
        except _BatchHandlerFailed as failed:
            if is_database_unavailable(failed.error) or not await self._database_answers():
                await self.handle_record(records[0])  # waits for the database
                return 1
            handled = 0
            if failed.index > 0:  # the events before the failing one, as a shorter run
                handled = await self.handle_run(records[: failed.index])
                if handled < failed.index:
                    return handled
            await self.handle_record(records[failed.index], first_failure=failed.error)
            return failed.index + 1
        except (StopRequested, asyncio.CancelledError):
            raise
        except Exception:  # e.g. the database went away: the one-message path decides
            await self.handle_record(records[0])
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

    def _handler_of(self, record: Any, envelope: Envelope) -> EventHandler | None:
        return self._handlers.get(envelope.event_type) or self._handlers.get(record.topic)

    def _leading_run(self, records: Sequence[Any]) -> list[_Pending]:
        """The leading messages that are valid events with a handler (none after the first not)."""
        run: list[_Pending] = []
        for record in records:
            try:
                envelope = self._envelope(record)
            except InvalidEventError:
                break
            handler = self._handler_of(record, envelope)
            if handler is None:
                break
            run.append(_Pending(record, envelope, handler, request_id_of(record, envelope)))
        return run

    async def _apply_batch(self, run: Sequence[_Pending]) -> list[Outcome]:
        """
        One transaction for the run: claim every event id in the inbox with one statement, run
        the handler of each newly claimed event in order, commit. A handler error rolls it all
        back and raises :class:`_BatchHandlerFailed` with the failing message's index.
        """
        async with self._db.transaction() as session:
            claimed = await claim_events(session, [_claim(p.record, p.envelope) for p in run])
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
        self.status.last_processed_at = now_utc()
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
    async def handle_record(
        self, record: Any, *, first_failure: Exception | None = None
    ) -> Outcome:
        """
        Apply, skip or dead-letter one message. Raises ``StopRequested`` when interrupted.
        ``first_failure``: the handler already failed once for it (in a batch); that counts as
        its first attempt.
        """
        try:
            envelope: Envelope | None = self._envelope(record)
            invalid: InvalidEventError | None = None
        except InvalidEventError as exc:
            envelope, invalid = None, exc
        token = request_id_var.set(request_id_of(record, envelope))
        try:
            if envelope is None:
                assert invalid is not None
                return await self.dead_letter(record, invalid.reason, str(invalid), attempts=0)
            handler = self._handler_of(record, envelope)
            if handler is None:
                return await self.dead_letter(
                    record,
                    DeadLetterReason.NO_HANDLER,
                    f"no handler for event_type {envelope.event_type!r} on topic {record.topic!r}",
                    attempts=0,
                )
            return await self._apply_or_dead_letter(record, envelope, handler, first_failure)
        finally:
            request_id_var.reset(token)

    async def _apply_or_dead_letter(
        self,
        record: Any,
        envelope: Envelope,
        handler: EventHandler,
        first_failure: Exception | None,
    ) -> Outcome:
        attempts = _Attempts(count=0 if first_failure is None else 1)
        started = time.perf_counter()
        try:
            with consume_span(self._group_id, [record]):
                outcome = await self._apply_with_retries(
                    record, envelope, handler, attempts, first_failure
                )
        except (StopRequested, asyncio.CancelledError):
            raise
        except InvalidEventError as refused:
            # The handler found the event unusable (e.g. a bad snapshot): no retry.
            return await self.dead_letter(
                record, refused.reason, str(refused), attempts=attempts.count
            )
        except Exception as exc:
            logger.error(
                "Event %s (%s) failed %d times, sending it to %s: %s",
                envelope.event_id,
                envelope.event_type,
                attempts.count,
                self._dead_letters.topic,
                error_text(exc),
            )
            return await self.dead_letter(
                record, DeadLetterReason.HANDLER_FAILED, error_text(exc), attempts=attempts.count
            )
        self._count_one(record, envelope, outcome)
        elapsed = time.perf_counter() - started
        self.metrics.applied([(record.topic, envelope.event)], [outcome], elapsed)
        return outcome

    def _count_one(self, record: Any, envelope: Envelope, outcome: Outcome) -> None:
        self.status.last_processed_at = now_utc()
        if outcome is Outcome.DUPLICATE:
            self.status.duplicates += 1
            logger.info(
                "Event %s (%s) already applied: duplicate delivery skipped",
                envelope.event_id,
                envelope.event_type,
            )
            return
        self.status.processed += 1
        logger.info(
            "Applied event %s (%s) from %s[%d]@%d",
            envelope.event_id,
            envelope.event_type,
            record.topic,
            record.partition,
            record.offset,
        )

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
                    raise DatabaseUnavailable(error_text(exc)) from exc
                raise

        retry = self._retry
        retries = handler_retries(
            retry.max_attempts,
            retry.backoff_s,
            retry.backoff_max_s,
            never_retry=(InvalidEventError,),
            sleep=self._sleep,
            before_sleep=self._before_handler_retry,
        )
        waits = database_waits(
            retry.backoff_s, sleep=self._sleep, before_sleep=self._before_database_retry
        )
        try:
            outcome: Outcome = await waits(retries, attempt)
        finally:
            self.status.waiting_for = None
        return outcome

    async def _apply_once(
        self, record: Any, envelope: Envelope, handler: EventHandler, attempts: _Attempts
    ) -> Outcome:
        """One transaction: claim the event id in the inbox, run the handler, commit."""
        async with self._db.transaction() as session:
            claimed = await claim_events(session, [_claim(record, envelope)])
            if not claimed:
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
            self.status.record_error(error_text(exc))
        logger.warning(
            "Handler failed (attempt %d of %d), retrying in %.2f s: %s",
            state.attempt_number,
            self._retry.max_attempts,
            state.upcoming_sleep,
            error_text(exc) if exc is not None else "",
        )

    def _before_database_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.waiting_for = "database"
        if exc is not None:
            self.status.record_error(error_text(exc))
        logger.warning(
            "Database unavailable while applying an event (wait %d), retrying in %.2f s: %s",
            state.attempt_number,
            state.upcoming_sleep,
            exc,
        )

    # --- dead-letter topic ---
    async def dead_letter(
        self, record: Any, reason: DeadLetterReason, error: str, attempts: int
    ) -> Outcome:
        """Send ``record`` to the dead-letter topic (never blocks on its size; see dead_letter)."""
        if reason is not DeadLetterReason.HANDLER_FAILED:
            logger.error(
                "Message %s[%d]@%d refused (%s: %s): sending it to %s",
                record.topic,
                record.partition,
                record.offset,
                reason.value,
                error[:500],
                self._dead_letters.topic,
            )
        try:
            letter = await self._dead_letters.publish(record, reason, error, attempts)
        finally:
            self.status.waiting_for = None
        self.status.dead_lettered += 1
        self.metrics.dead_lettered(record.topic)
        if letter.form in (CUT, BARE):
            self.status.dead_letters_cut += 1
        self.status.record_error(f"{reason.value}: {error}"[:2000])
        return Outcome.DEAD_LETTERED
