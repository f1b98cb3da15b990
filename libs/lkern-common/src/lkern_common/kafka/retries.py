"""
================================================================
FILE: retries.py
PATH: /libs/lkern-common/src/lkern_common/kafka/retries.py
DESCRIPTION: The consumer's retry policies (tenacity): handler, database, broker, dead-letter
VERSION: v1.0.1
UPDATED: 2026-12-02 06:30:00
================================================================

Four kinds of wait, all built from :mod:`lkern_common.retrying`:

- a failing handler: ``KAFKA_CONSUMER_MAX_ATTEMPTS`` attempts with backoff
  (``KAFKA_CONSUMER_RETRY_BACKOFF_MS`` doubling up to ``…_MAX_MS``), then the last error;
- a database that cannot be reached: retried without limit (backoff up to 5 s), never counted
  as a handler attempt;
- the broker (connecting) and a dead-letter publish that failed for a reason that may pass:
  retried without limit (backoff up to 10 s).

Every wait ends at once when the consumer stops (:class:`StopRequested`).
"""

# === IMPORTS ===
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
)

from lkern_common.retrying import exponential_backoff, retry_errors_except

# === CONSTANTS ===
DATABASE_RETRY_MAX_S = 5.0
DEAD_LETTER_RETRY_MAX_S = 10.0
CONNECT_RETRY_MAX_S = 10.0
MIN_BACKOFF_S = 0.1

# === TYPES ===
Sleep = Callable[[float], Awaitable[None]]
BeforeSleep = Callable[[RetryCallState], Any]


class StopRequested(Exception):
    """``stop()`` interrupted a wait; the message being handled stays uncommitted."""


class DatabaseUnavailable(Exception):
    """A handler attempt failed because the database could not be reached."""


# === POLICIES ===
def handler_retries(
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    *,
    never_retry: tuple[type[BaseException], ...],
    sleep: Sleep,
    before_sleep: BeforeSleep,
) -> AsyncRetrying:
    """A failing handler: ``max_attempts`` attempts, then its last error is raised."""
    return AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        retry=retry_errors_except(DatabaseUnavailable, StopRequested, *never_retry),
        wait=exponential_backoff(backoff_s, backoff_max_s),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def database_waits(backoff_s: float, *, sleep: Sleep, before_sleep: BeforeSleep) -> AsyncRetrying:
    """The database is down: wait for it without limit (a stop ends the wait)."""
    return AsyncRetrying(
        stop=stop_never,
        retry=retry_if_exception_type(DatabaseUnavailable),
        wait=exponential_backoff(max(backoff_s, MIN_BACKOFF_S), DATABASE_RETRY_MAX_S),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def forever(
    initial_s: float,
    maximum_s: float,
    *,
    sleep: Sleep,
    before_sleep: BeforeSleep,
    never_retry: tuple[type[BaseException], ...] = (),
) -> AsyncRetrying:
    """Retry any error (but ``StopRequested`` and ``never_retry``) without limit."""
    return AsyncRetrying(
        stop=stop_never,
        retry=retry_errors_except(StopRequested, *never_retry),
        wait=exponential_backoff(max(initial_s, MIN_BACKOFF_S), maximum_s),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
