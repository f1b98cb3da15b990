"""
================================================================
FILE: test_dlq.py
PATH: /tools/lkern-devstack/tests/test_dlq.py
DESCRIPTION: `lkern dlq`: selecting dead letters, --since, superseded replays (pure logic)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:50:00
================================================================

The commands against a real stack: tests/faults/test_poison_messages.py.
"""

# === IMPORTS ===
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from lkern_devstack.dlq import entry_of, parse_since, replay_message, selected, superseded

# === CONSTANTS ===
NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


# === HELPERS ===
@dataclass
class Record:
    offset: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "lkern.orders.dlq"
    partition: int = 0
    key: bytes | None = b"7"
    value: bytes | None = b"{}"


def dead_letter(offset: int, reason: str, failed_at: datetime, **extra: str) -> Record:
    headers = {
        "x-dlq-reason": reason,
        "x-dlq-original-topic": "lkern.contacts.created",
        "x-dlq-original-partition": "1",
        "x-dlq-original-offset": str(100 + offset),
        "x-dlq-failed-at": failed_at.isoformat(),
        **extra,
    }
    return Record(offset, [(name, value.encode()) for name, value in headers.items()])


# === TESTS ===
def test_since_takes_a_time_or_an_age() -> None:
    assert parse_since("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_since("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_since(None) is None
    with pytest.raises(ValueError):
        parse_since("yesterday-ish")


def test_entries_are_selected_by_reason_and_time() -> None:
    entries = [
        entry_of(dead_letter(0, "bad-signature", NOW - timedelta(hours=3))),
        entry_of(dead_letter(1, "handler-failed", NOW - timedelta(hours=1))),
        entry_of(dead_letter(2, "bad-signature", NOW - timedelta(minutes=5))),
    ]
    assert entries[0].original_offset == 100 and entries[0].form == "whole"
    since = NOW - timedelta(hours=2)
    assert [e.dlq_offset for e in selected(entries, None, since)] == [1, 2]
    assert [e.dlq_offset for e in selected(entries, "bad-signature", None)] == [0, 2]
    assert [e.dlq_offset for e in selected(entries, "bad-signature", since)] == [2]


def test_a_dead_letter_replayed_and_refused_again_is_superseded() -> None:
    first = entry_of(dead_letter(0, "bad-signature", NOW))
    again = entry_of(
        dead_letter(5, "bad-signature", NOW, **{"x-lkern-replay-of": first.coordinates})
    )
    assert superseded([first, again]) == {"lkern.orders.dlq[0]@0"}


def test_a_replay_carries_the_original_bytes_and_signature_without_dlq_headers() -> None:
    record = dead_letter(3, "handler-failed", NOW, **{"x-lkern-replay-of": "old"})
    record.headers.append(("x-lkern-signature", b"sig"))
    key, value, headers = replay_message(record, entry_of(record))
    assert (key, value) == (b"7", b"{}")
    assert headers == [
        ("x-lkern-signature", b"sig"),
        ("x-lkern-replay-of", b"lkern.orders.dlq[0]@3"),
    ]
