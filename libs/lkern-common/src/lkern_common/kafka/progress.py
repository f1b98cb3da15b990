"""
================================================================
FILE: progress.py
PATH: /libs/lkern-common/src/lkern_common/kafka/progress.py
DESCRIPTION: The consumer's status and progress: counters, lag, and when it is stalled
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

A consumer is **stalled** when it has lag (messages on its partitions it has not finished)
and has made no progress (no offset committed, and not caught up) for
``KAFKA_CONSUMER_STALL_SECONDS``. Its readiness check then fails: ``/ready`` answers 503 with
the reason (``stalled``: how long, the lag, what it waits for), where before a wedged consumer
kept ``/ready`` at 200. An idle consumer (no lag) is never stalled, however long it waits.

The figures are on :class:`ConsumerStatus` for the metrics to export: ``lag`` (messages,
summed over the assigned partitions, from the high watermarks of the last fetch) and
``seconds_without_progress``.
"""

# === IMPORTS ===
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

# === TYPES ===
Clock = Callable[[], float]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def now_utc() -> datetime:
    return datetime.now(UTC)


# === PROGRESS ===
class ProgressTracker:
    """
    Per assigned partition: the first offset not finished yet and the high watermark; and when
    the consumer last made progress (a commit, or a fetch that found it caught up).
    """

    def __init__(self, stall_after_s: float, clock: Clock = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._next: dict[TopicPartition, int] = {}
        self._highwater: dict[TopicPartition, int] = {}
        self._last_progress = clock()

    def reset(self) -> None:
        """Forget the partitions (rebalance, reconnect); the progress clock restarts."""
        self._next.clear()
        self._highwater.clear()
        self._last_progress = self._clock()

    def fetched(self, tp: TopicPartition, first_offset: int | None, highwater: int | None) -> None:
        """A fetch returned (``first_offset``: its first message's, when it had any)."""
        if first_offset is not None:
            self._next[tp] = first_offset
        if highwater is not None:
            self._highwater[tp] = highwater
        if not self.lag():  # caught up (or nothing known yet): idle is not stalled
            self._last_progress = self._clock()

    def committed(self, tp: TopicPartition, next_offset: int) -> None:
        """``next_offset`` was committed: progress."""
        self._next[tp] = next_offset
        self._highwater[tp] = max(self._highwater.get(tp, next_offset), next_offset)
        self._last_progress = self._clock()

    def lag(self) -> int | None:
        """Messages not finished on the known partitions (None before the first fetch)."""
        known = [tp for tp in self._next if tp in self._highwater]
        if not known:
            return None
        return sum(max(0, self._highwater[tp] - self._next[tp]) for tp in known)

    def seconds_without_progress(self) -> float:
        return max(0.0, self._clock() - self._last_progress)

    def stalled(self) -> bool:
        """Lag, and no progress for ``stall_after_s``."""
        lag = self.lag()
        return bool(lag) and self.seconds_without_progress() >= self.stall_after_s


# === STATUS ===
@dataclass
class ConsumerStatus:
    """Counters and state of one consumer, for logs, metrics and the readiness check."""

    group_id: str
    topics: list[str]
    state: str = "stopped"  # stopped | connecting | running | stopping
    assigned_partitions: list[str] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_letters_cut: int = 0  # sent in the cut or bare form (lkern_common.kafka.dead_letter)
    retries: int = 0
    waiting_for: str | None = None  # "database" | "dead-letter topic" | "broker" | None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_processed_at: datetime | None = None
    progress: ProgressTracker = field(default_factory=lambda: ProgressTracker(60.0))

    @property
    def lag(self) -> int | None:
        return self.progress.lag()

    @property
    def seconds_without_progress(self) -> float:
        return self.progress.seconds_without_progress()

    def stalled_reason(self) -> str | None:
        """Why the consumer is stalled, or None when it is not."""
        if not self.progress.stalled():
            return None
        waiting = f", waiting for the {self.waiting_for}" if self.waiting_for else ""
        return (
            f"no progress for {self.seconds_without_progress:.0f} s with {self.lag} messages "
            f"of lag{waiting}; last error: {self.last_error}"
        )

    def record_error(self, error: str) -> None:
        self.last_error = error
        self.last_error_at = now_utc()

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
            "dead_letters_cut": self.dead_letters_cut,
            "retries": self.retries,
            "lag": self.lag,
            "seconds_without_progress": round(self.seconds_without_progress, 1),
            "stalled": self.stalled_reason(),
            "waiting_for": self.waiting_for,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_processed_at": _iso(self.last_processed_at),
        }
