"""
================================================================
FILE: test_dead_letter.py
PATH: /libs/lkern-common/tests/test_dead_letter.py
DESCRIPTION: Dead-letter forms that fit, and the consumer's stall detection (pure logic)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:40:00
================================================================

The broker-facing halves (an oversized message dead-lettered on a real broker, a stalled
consumer's readiness) are in test_consumer.py.
"""

# === IMPORTS ===
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from lkern_common.kafka.dead_letter import (
    BARE,
    CUT,
    WHOLE,
    bare_dead_letter,
    dead_letter_forms,
    dlq_headers,
    message_size,
)
from lkern_common.kafka.envelope import DeadLetterReason
from lkern_common.kafka.progress import ProgressTracker

# === CONSTANTS ===
ONE_MIB = 1024 * 1024
LIMIT = 1_000_000


# === HELPERS ===
@dataclass
class Record:
    """What the consumer knows of a fetched message (the fields a dead letter uses)."""

    value: bytes | None
    key: bytes | None = b"42"
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "lkern.contacts.created"
    partition: int = 2
    offset: int = 1234
    timestamp: int = 1_700_000_000_000


def added_for(record: Any) -> dict[str, str]:
    return dlq_headers(record, DeadLetterReason.INVALID_ENVELOPE, "x" * 3000, 0, "orders-group")


def headers_of(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# === FORMS ===
def test_a_small_message_is_dead_lettered_whole() -> None:
    record = Record(b'{"event_id": "x"}', headers=[("x-lkern-signature", b"sig")])
    first, last = dead_letter_forms(record, added_for(record), LIMIT)
    assert first.form == WHOLE and last.form == BARE
    assert (first.key, first.value) == (record.key, record.value)
    headers = headers_of(first.headers)
    assert headers["x-lkern-signature"] == "sig"
    assert headers["x-dlq-original-offset"] == "1234"
    assert len(headers["x-dlq-error"]) == 2000


def test_a_message_just_under_the_producer_limit_is_cut_to_fit_with_its_coordinates() -> None:
    signature = ("x-lkern-signature", b"s" * 300)
    value = b"v" * (ONE_MIB - 1000)
    record = Record(value, headers=[signature, ("x-request-id", b"req-1")])
    assert message_size(record.key, value, record.headers) < ONE_MIB  # the producer took it
    letter, _ = dead_letter_forms(record, added_for(record), LIMIT)
    assert letter.form == CUT
    assert letter.size <= LIMIT
    assert value.startswith(letter.value) and len(letter.value) > LIMIT - 10_000
    headers = headers_of(letter.headers)
    assert headers["x-dlq-form"] == "cut"
    assert headers["x-dlq-original-value-bytes"] == str(len(value))
    assert (
        headers["x-dlq-original-topic"],
        headers["x-dlq-original-partition"],
        headers["x-dlq-original-offset"],
    ) == ("lkern.contacts.created", "2", "1234")
    assert headers["x-lkern-signature"] == "s" * 300 and headers["x-request-id"] == "req-1"
    assert len(headers["x-dlq-error"]) == 500


def test_huge_headers_and_key_are_left_out_of_the_cut_form() -> None:
    record = Record(
        b"{}",
        key=b"k" * 5000,
        headers=[("x-huge", b"h" * 600_000), ("x-request-id", b"req-2"), ("x-big", b"b" * 500_000)],
    )
    letter, _ = dead_letter_forms(record, added_for(record), LIMIT)
    assert letter.form == CUT and letter.size <= LIMIT
    headers = headers_of(letter.headers)
    assert headers["x-dlq-dropped-headers"] == "x-huge,x-big"
    assert headers["x-request-id"] == "req-2"
    assert letter.key == b"k" * 1024


def test_the_bare_form_keeps_only_the_dlq_headers() -> None:
    record = Record(b"v" * 900_000, headers=[("x-lkern-signature", b"sig")])
    letter = bare_dead_letter(record, added_for(record))
    headers = headers_of(letter.headers)
    assert letter.value == b"" and letter.size < 2000
    assert set(headers) == {
        *added_for(record),
        "x-dlq-form",
        "x-dlq-original-value-bytes",
    }
    assert headers["x-dlq-original-offset"] == "1234"


def test_dlq_headers_of_an_earlier_dead_letter_are_replaced() -> None:
    record = Record(b"{}", headers=[("x-dlq-reason", b"old"), ("x-request-id", b"r")])
    letter, _ = dead_letter_forms(record, added_for(record), LIMIT)
    reasons = [value for name, value in letter.headers if name == "x-dlq-reason"]
    assert reasons == [b"invalid-envelope"]


# === STALL DETECTION ===
def test_a_consumer_with_lag_and_no_progress_is_stalled_after_the_threshold() -> None:
    clock = Clock()
    tracker = ProgressTracker(stall_after_s=30.0, clock=clock)
    tp = TopicPartition("t", 0)
    assert tracker.lag() is None and not tracker.stalled()
    tracker.fetched(tp, first_offset=10, highwater=15)
    assert tracker.lag() == 5
    clock.now += 29
    assert not tracker.stalled()
    clock.now += 2
    assert tracker.stalled()
    assert tracker.seconds_without_progress() == 31
    tracker.committed(tp, 11)  # progress: the clock restarts
    assert tracker.lag() == 4 and not tracker.stalled()


def test_an_idle_consumer_without_lag_is_never_stalled() -> None:
    clock = Clock()
    tracker = ProgressTracker(stall_after_s=30.0, clock=clock)
    tp = TopicPartition("t", 0)
    tracker.fetched(tp, first_offset=3, highwater=4)
    tracker.committed(tp, 4)
    for _ in range(10):
        clock.now += 60
        tracker.fetched(tp, first_offset=None, highwater=4)
        assert tracker.lag() == 0 and not tracker.stalled()


def test_a_rebalance_forgets_the_partitions_and_restarts_the_clock() -> None:
    clock = Clock()
    tracker = ProgressTracker(stall_after_s=5.0, clock=clock)
    tracker.fetched(TopicPartition("t", 1), first_offset=0, highwater=100)
    clock.now += 10
    assert tracker.stalled()
    tracker.reset()
    assert tracker.lag() is None and not tracker.stalled()
