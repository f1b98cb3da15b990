"""
================================================================
FILE: retrying.py
PATH: /libs/lkern-common/src/lkern_common/retrying.py
DESCRIPTION: The one retry style of the library's background workers (tenacity)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

The outbox relay and the Kafka consumer retry with tenacity (``AsyncRetrying``), built from the
pieces here so that both wait, stop and log the same way:

- :func:`exponential_backoff`: ``initial``, 2×, 4× … up to ``maximum`` seconds, with jitter
  (each wait 80–100 % of its step, so that replicas that failed together do not retry in step);
- :func:`retry_errors_except`: retry any ``Exception`` except the given types, never
  ``CancelledError``;
- :func:`stop_when`: stop retrying once a flag (e.g. "stopping") is set;
- :class:`StopAwareSleep`: the sleep tenacity uses, cut short by an ``asyncio.Event``.
"""

# === IMPORTS ===
import asyncio
import contextlib
import random
from collections.abc import Callable

from tenacity import RetryCallState, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

# === CONSTANTS ===
JITTER_LOW = 0.8


# === WAITS ===
class exponential_backoff(wait_base):
    """``initial * 2**(attempt-1)`` seconds, at most ``maximum``, times a jitter in [0.8, 1]."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = max(initial, 0.0)
        self.maximum = max(maximum, self.initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        exponent = min(retry_state.attempt_number - 1, 30)
        step = min(self.maximum, self.initial * (2.0**exponent))
        return step * random.uniform(JITTER_LOW, 1.0)


# === CONDITIONS ===
def retry_errors_except(*excluded: type[BaseException]) -> retry_if_exception:
    """
    Retry on any ``Exception`` except ``excluded``. Never on ``CancelledError`` (a
    ``BaseException``), which tenacity's ``retry_if_not_exception_type`` would retry.
    """
    return retry_if_exception(
        lambda exc: isinstance(exc, Exception) and not isinstance(exc, excluded)
    )


class stop_when(stop_base):
    """Stop retrying once ``flag()`` is true (the last error is then raised)."""

    def __init__(self, flag: Callable[[], bool]) -> None:
        self.flag = flag

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.flag()


# === SLEEP ===
class StopAwareSleep:
    """
    A sleep for ``AsyncRetrying(sleep=…)`` that ends as soon as ``stopping`` is set; then it
    raises ``interrupted()`` when one is given (the caller's "stop requested" exception), else
    returns early.
    """

    def __init__(
        self, stopping: asyncio.Event, interrupted: Callable[[], BaseException] | None = None
    ) -> None:
        self.stopping = stopping
        self.interrupted = interrupted

    async def __call__(self, seconds: float) -> None:
        if not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(seconds, 0.0))
        if self.stopping.is_set() and self.interrupted is not None:
            raise self.interrupted()
