"""
================================================================
FILE: test_metrics_view.py
PATH: /tools/lkern-devstack/tests/test_metrics_view.py
DESCRIPTION: lkern status's arithmetic: rates and p99s between two scrapes of /metrics
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import pytest

from lkern_devstack.metrics_view import Scrape, figures, quantile, rate, window_quantile

# === CONSTANTS ===
BEFORE = """
# TYPE lkern_http_requests counter
lkern_http_requests_total{method="GET",route="/a",status="200"} 10
lkern_http_requests_total{method="GET",route="/a",status="500"} 0
# TYPE lkern_http_request_duration_seconds histogram
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.01"} 10
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.1"} 10
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="+Inf"} 10
lkern_http_request_duration_seconds_count{method="GET",route="/a"} 10
lkern_http_request_duration_seconds_sum{method="GET",route="/a"} 0.05
# TYPE lkern_consumer_lag_messages gauge
lkern_consumer_lag_messages{group="g",topic="t",partition="0"} 0
"""
AFTER = """
# TYPE lkern_http_requests counter
lkern_http_requests_total{method="GET",route="/a",status="200"} 108
lkern_http_requests_total{method="GET",route="/a",status="500"} 2
# TYPE lkern_http_request_duration_seconds histogram
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.01"} 60
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.1"} 110
lkern_http_request_duration_seconds_bucket{method="GET",route="/a",le="+Inf"} 110
lkern_http_request_duration_seconds_count{method="GET",route="/a"} 110
lkern_http_request_duration_seconds_sum{method="GET",route="/a"} 3.0
# TYPE lkern_consumer_lag_messages gauge
lkern_consumer_lag_messages{group="g",topic="t",partition="0"} 4
lkern_consumer_lag_messages{group="g",topic="t",partition="1"} 3
"""


# === TESTS ===
def test_rate_is_the_increase_per_second() -> None:
    before, after = Scrape.parse(BEFORE), Scrape.parse(AFTER)
    assert rate(before, after, "lkern_http_requests_total", 2.0) == 50.0
    assert rate(before, after, "lkern_http_requests_total", 2.0, status="5*") == 1.0


def test_quantile_interpolates_like_histogram_quantile() -> None:
    assert quantile(0.5, {0.01: 50, 0.1: 100, float("inf"): 100}) == pytest.approx(0.01)
    assert quantile(0.99, {0.01: 50, 0.1: 100, float("inf"): 100}) == pytest.approx(0.0982)
    assert quantile(0.99, {0.01: 0, float("inf"): 0}) is None
    assert quantile(0.99, {0.01: 0, 0.1: 0, float("inf"): 5}) == 0.1  # all above the last bound


def test_the_window_p99_counts_only_what_happened_between_the_scrapes() -> None:
    before, after = Scrape.parse(BEFORE), Scrape.parse(AFTER)
    # 100 requests in the window: 50 under 10 ms, 50 between 10 and 100 ms.
    p99 = window_quantile(0.99, before, after, "lkern_http_request_duration_seconds")
    assert p99 == pytest.approx(0.0982)


def test_figures_show_the_parts_a_service_has() -> None:
    rows = dict(figures(Scrape.parse(BEFORE), Scrape.parse(AFTER), 2.0))
    assert rows["HTTP"].startswith("50.0/s  5xx 2.0 %  p99 98.2 ms")
    assert rows["consumer"].startswith("lag 7 ")
    assert "gRPC in" not in rows  # no gRPC figures in these scrapes
