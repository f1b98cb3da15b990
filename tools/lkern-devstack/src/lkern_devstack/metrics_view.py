"""
================================================================
FILE: metrics_view.py
PATH: /tools/lkern-devstack/src/lkern_devstack/metrics_view.py
DESCRIPTION: The live figures of `lkern status`: two scrapes of /metrics, rates and p99s
VERSION: v1.0.0
UPDATED: 2026-12-02 06:40:00
================================================================

``lkern status`` scrapes each service's ``/metrics`` twice, ``interval`` seconds apart, and
shows what happened in between: request rates, error share and p99 latencies (from the
histograms' bucket counts, interpolated as Prometheus' ``histogram_quantile`` does), pool
use, the outbox backlog, consumer lag and event latency. Metric names: lkern_common.metrics.
"""

# === IMPORTS ===
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# === CONSTANTS ===
# The rows of `lkern status`, in this order (a service shows the ones it has).
ROWS = ("HTTP", "gRPC in", "gRPC out", "DB pool", "outbox", "consumer", "event latency")

# === TYPES ===
Labels = dict[str, str]


@dataclass(frozen=True)
class Scrape:
    """Every sample of one scrape of /metrics."""

    samples: list[tuple[str, Labels, float]]

    @classmethod
    def parse(cls, text: str) -> "Scrape":
        return cls(
            [
                (sample.name, dict(sample.labels), sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            ]
        )

    def total(self, name: str, where: Callable[[Labels], bool] = lambda _: True) -> float:
        """The sum of the samples called ``name`` whose labels pass ``where``."""
        return sum(
            value for sample, labels, value in self.samples if sample == name and where(labels)
        )

    def has(self, name: str) -> bool:
        return any(sample == name for sample, _, _ in self.samples)

    def buckets(
        self, name: str, where: Callable[[Labels], bool] = lambda _: True
    ) -> dict[float, float]:
        """Upper bound → cumulative count of histogram ``name``, summed over its label sets."""
        counts: dict[float, float] = {}
        for sample, labels, value in self.samples:
            if sample == f"{name}_bucket" and where(labels):
                bound = float(labels["le"])
                counts[bound] = counts.get(bound, 0.0) + value
        return counts


# === ARITHMETIC ===
def rate(before: Scrape, after: Scrape, name: str, seconds: float, **match: str) -> float:
    """Per-second increase of counter ``name`` between the scrapes."""
    where = _matcher(match)
    return max(after.total(name, where) - before.total(name, where), 0.0) / seconds


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile``: the q-quantile of cumulative bucket counts (None: no samples)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def window_quantile(
    q: float, before: Scrape, after: Scrape, name: str, **match: str
) -> float | None:
    """The q-quantile of histogram ``name`` over what happened between the scrapes."""
    where = _matcher(match)
    start, end = before.buckets(name, where), after.buckets(name, where)
    return quantile(q, {bound: end[bound] - start.get(bound, 0.0) for bound in end})


def _matcher(match: dict[str, str]) -> Callable[[Labels], bool]:
    def where(labels: Labels) -> bool:
        for key, wanted in match.items():
            value = labels.get(key, "")
            if wanted.endswith("*") and value.startswith(wanted[:-1]):
                continue
            if value != wanted:
                return False
        return True

    return where


# === FORMAT ===
def per_second(value: float) -> str:
    return f"{value:.1f}/s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


# === VIEW ===
def figures(before: Scrape, after: Scrape, seconds: float) -> list[tuple[str, str]]:
    """(what, value) rows of one service: only the parts it has (no consumer, no gRPC client…)."""
    rows: list[tuple[str, str]] = []
    requests = rate(before, after, "lkern_http_requests_total", seconds)
    errors = rate(before, after, "lkern_http_requests_total", seconds, status="5*")
    share = f"{100 * errors / requests:.1f} %" if requests else "–"
    http_p99 = window_quantile(0.99, before, after, "lkern_http_request_duration_seconds")
    rows.append(("HTTP", f"{per_second(requests)}  5xx {share}  p99 {duration(http_p99)}"))
    for side, label in (("server", "gRPC in"), ("client", "gRPC out")):
        counter = f"lkern_grpc_{side}_handled_total"
        if after.has(counter):
            calls = rate(before, after, counter, seconds)
            p99 = window_quantile(0.99, before, after, f"lkern_grpc_{side}_handling_seconds")
            rows.append((label, f"{per_second(calls)}  p99 {duration(p99)}"))
    in_use, size = (
        after.total("lkern_db_pool_connections_in_use"),
        after.total("lkern_db_pool_size"),
    )
    wait_p99 = window_quantile(0.99, before, after, "lkern_db_pool_wait_seconds")
    rows.append(("DB pool", f"{in_use:.0f}/{size:.0f} in use  wait p99 {duration(wait_p99)}"))
    pending = after.total("lkern_outbox_pending_events")
    oldest = after.total("lkern_outbox_oldest_pending_age_seconds")
    published = rate(before, after, "lkern_outbox_published_events_total", seconds)
    failures = after.total("lkern_outbox_publish_failures_total")
    rows.append(
        (
            "outbox",
            f"{pending:.0f} pending (oldest {oldest:.1f} s)  published {per_second(published)}  "
            f"failures {failures:.0f}",
        )
    )
    if after.has("lkern_consumer_lag_messages") or after.has("lkern_consumer_events_total"):
        rows.extend(_consumer_rows(before, after, seconds))
    return rows


def _consumer_rows(before: Scrape, after: Scrape, seconds: float) -> Iterable[tuple[str, str]]:
    lag = after.total("lkern_consumer_lag_messages")
    applied = rate(before, after, "lkern_consumer_events_total", seconds, outcome="applied")
    retried = after.total("lkern_consumer_retries_total")
    dead = after.total("lkern_consumer_events_total", _matcher({"outcome": "dead_lettered"}))
    event_p99 = window_quantile(0.99, before, after, "lkern_event_end_to_end_seconds")
    yield (
        "consumer",
        f"lag {lag:.0f}  applied {per_second(applied)}  retried {retried:.0f}  "
        f"dead-lettered {dead:.0f}",
    )
    yield "event latency", f"p99 {duration(event_p99)} (occurred → applied)"
