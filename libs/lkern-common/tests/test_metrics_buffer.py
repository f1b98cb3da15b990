"""
================================================================
FILE: test_metrics_buffer.py
PATH: /libs/lkern-common/tests/test_metrics_buffer.py
DESCRIPTION: The hot paths' tallies render exactly as the same figures recorded one by one
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

lkern_common.metrics.buffer writes a tally into a histogram's own sum and buckets (there is no
public call for several observations at once): these tests catch a prometheus-client release
that changes them, and check that a tally reaches the metric within the flush interval.
"""

# === IMPORTS ===
import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from lkern_common.metrics.buffer import (
    FLUSH_INTERVAL_SECONDS,
    BufferedCounter,
    BufferedHistogram,
    flush_all,
)

# === CONSTANTS ===
BUCKETS = (0.001, 0.01, 0.1, 1.0)
# On a bound, between bounds, below the first, above the last (+Inf).
VALUES = (0.0005, 0.001, 0.003, 0.01, 0.05, 0.1, 0.5, 1.0, 7.0, 0.0)


# === HELPERS ===
def rendered(registry: CollectorRegistry) -> list[str]:
    """The exposition without the _created lines (creation times differ)."""
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


# === TESTS ===
def test_a_flushed_histogram_tally_renders_as_direct_observations() -> None:
    direct_registry, tallied_registry = CollectorRegistry(), CollectorRegistry()
    labelled = ["method", "route"]
    direct = Histogram("t", "d", labelled, buckets=BUCKETS, registry=direct_registry)
    tallied = BufferedHistogram(
        Histogram("t", "d", labelled, buckets=BUCKETS, registry=tallied_registry)
    )
    plain_direct = Histogram("u", "d", buckets=BUCKETS, registry=direct_registry)
    plain_tallied = BufferedHistogram(
        Histogram("u", "d", buckets=BUCKETS, registry=tallied_registry)
    )
    for index, value in enumerate(VALUES):
        labels = ("GET", f"/r{index % 2}")
        direct.labels(*labels).observe(value)
        tallied.observe(labels, value)
        plain_direct.observe(value)
        plain_tallied.observe((), value)
    flush_all()
    assert rendered(tallied_registry) == rendered(direct_registry)


def test_a_flushed_counter_tally_renders_as_direct_increments() -> None:
    direct_registry, tallied_registry = CollectorRegistry(), CollectorRegistry()
    direct = Counter("c", "d", ["code"], registry=direct_registry)
    tallied = BufferedCounter(Counter("c", "d", ["code"], registry=tallied_registry))
    for code in ("OK", "OK", "NOT_FOUND", "OK"):
        direct.labels(code).inc()
        tallied.inc((code,))
    flush_all()
    assert rendered(tallied_registry) == rendered(direct_registry)


async def test_a_tally_reaches_its_metric_within_the_flush_interval() -> None:
    registry = CollectorRegistry()
    counter = Counter("late", "d", ["code"], registry=registry)
    BufferedCounter(counter).inc(("OK",))
    assert counter.labels("OK")._value.get() == 0  # tallied, not yet written
    await asyncio.sleep(FLUSH_INTERVAL_SECONDS + 0.5)
    assert counter.labels("OK")._value.get() == 1
