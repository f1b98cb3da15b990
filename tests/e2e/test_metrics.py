"""
================================================================
FILE: test_metrics.py
PATH: /tests/e2e/test_metrics.py
DESCRIPTION: End-to-end: /metrics of both services after known traffic, with 1 and 2 workers;
             lkern status shows the live figures
VERSION: v1.0.0
UPDATED: 2026-12-02 06:50:00
================================================================

The real stack (`lkern up`: both services, PostgreSQL, the broker) runs once with one worker
per service and once with two (HTTP_WORKERS=2). After known traffic (contacts created, read,
one unknown, some renamed; orders created, which validates their contacts over gRPC) every
scrape, whichever worker answers it, shows exactly that traffic: the counts of all workers
summed, by route template; the outbox drained; orders' consumer applied every contact event,
with no lag, and timed each from its occurred_at.
"""

# === IMPORTS ===
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LKERN, RunningStack, ready_stack

# === CONSTANTS ===
CONTACTS_API = "/api/v1/contacts/"
CONTACT_ROUTE = "/api/v1/contacts/{contact_id}"
CONTACTS = 6
RENAMED = 2
EVENTS = CONTACTS + RENAMED  # ContactCreated ×6, ContactUpdated ×2
WAIT_S = 60.0
RAW_ID = re.compile(r"/\d+(/|$)")  # a path segment that is a number: an id, not a template

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# === FIXTURES ===
@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def running(request: pytest.FixtureRequest) -> Iterator[tuple[RunningStack, int]]:
    workers: int = request.param
    with ready_stack(HTTP_WORKERS=str(workers)) as stack:
        send_known_traffic(stack)
        yield stack, workers


# === HELPERS ===
def send_known_traffic(stack: RunningStack) -> None:
    """Contacts created, read, one unknown, some renamed; an order for each contact."""
    contacts, orders = stack.url("contacts"), stack.url("orders")
    close = {"Connection": "close"}  # a new connection each time: every worker takes some
    with stack.client() as client:
        ids = []
        for i in range(CONTACTS):
            created = client.post(
                f"{contacts}{CONTACTS_API}",
                json={"name": f"Metric {i}", "email": f"metric{i}@example.com"},
                headers=close,
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for contact_id in ids:
            assert client.get(f"{contacts}{CONTACTS_API}{contact_id}", headers=close).is_success
        assert client.get(f"{contacts}{CONTACTS_API}999999", headers=close).status_code == 404
        for contact_id in ids:
            order = client.post(
                f"{orders}/api/v1/orders/",
                json={
                    "contact_id": contact_id,
                    "lines": [{"description": "Bolt", "quantity": "1", "unit_price": "1.00"}],
                },
                headers=close,
            )
            assert order.status_code == 201, order.text
        for contact_id in ids[:RENAMED]:
            renamed = client.put(
                f"{contacts}{CONTACTS_API}{contact_id}", json={"name": "Renamed"}, headers=close
            )
            assert renamed.status_code == 200, renamed.text


def scrape(stack: RunningStack, service: str) -> Samples:
    """One scrape of a service's /metrics on a new connection (any worker may answer)."""
    response = httpx.get(
        f"{stack.url(service)}/metrics", headers={"Connection": "close"}, timeout=10.0
    )
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` that carry ``labels``."""
    wanted = set(labels.items())
    return sum(
        value for (sample, have), value in samples.items() if sample == name and wanted <= have
    )


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {
        dict(have)[label] for (sample, have) in samples if sample == name and label in dict(have)
    }


def wait_for(condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {condition}"
        time.sleep(0.5)


def events_settled(stack: RunningStack) -> bool:
    """Contacts published every event and orders applied them all, with no lag left."""
    contacts, orders = scrape(stack, "contacts"), scrape(stack, "orders")
    return (
        total(contacts, "lkern_outbox_published_events_total") >= EVENTS
        and total(contacts, "lkern_outbox_pending_events") == 0
        and total(orders, "lkern_consumer_events_total", outcome="applied") == EVENTS
        and total(orders, "lkern_consumer_lag_messages") == 0
    )


# === TESTS ===
def test_http_counts_by_route_template_from_every_worker(
    running: tuple[RunningStack, int],
) -> None:
    stack, workers = running
    requests = "lkern_http_requests_total"

    expected = {
        ("POST", CONTACTS_API, "201"): CONTACTS,
        ("GET", CONTACT_ROUTE, "200"): CONTACTS,
        ("GET", CONTACT_ROUTE, "404"): 1,
        ("PUT", CONTACT_ROUTE, "200"): RENAMED,
    }

    def counted(samples: Samples) -> dict[tuple[str, str, str], float]:
        return {
            (method, route, status): total(
                samples, requests, method=method, route=route, status=status
            )
            for method, route, status in expected
        }

    # Each worker writes its tallies within a second of a request.
    wait_for(
        "every worker's counts are written", lambda: counted(scrape(stack, "contacts")) == expected
    )
    for _ in range(4):  # whichever worker answers, it shows every worker's counts
        samples = scrape(stack, "contacts")
        assert counted(samples) == expected
        timed = "lkern_http_request_duration_seconds_count"
        assert total(samples, timed, method="POST", route=CONTACTS_API) == CONTACTS
        routes = label_values(samples, requests, "route")
        assert not any(RAW_ID.search(route) for route in routes), routes
        # Every worker is there: its pool and its process.
        assert total(samples, "lkern_db_pool_size", pool="orm") == 10 * workers
        assert total(samples, "lkern_db_pool_size", pool="driver") == 10 * workers
        assert len(label_values(samples, "process_resident_memory_bytes", "pid")) == workers


def test_grpc_calls_are_counted_on_both_sides(running: tuple[RunningStack, int]) -> None:
    stack, _ = running
    validate = "/contacts.ContactsService/ValidateContact"

    def calls() -> tuple[float, float]:
        contacts, orders = scrape(stack, "contacts"), scrape(stack, "orders")
        return (
            total(contacts, "lkern_grpc_server_handled_total", method=validate, code="OK"),
            total(orders, "lkern_grpc_client_handled_total", method=validate, code="OK"),
        )

    wait_for("both sides counted every call", lambda: min(calls()) >= CONTACTS)
    contacts, orders = scrape(stack, "contacts"), scrape(stack, "orders")
    served, called = calls()
    assert served == called >= CONTACTS
    assert total(orders, "lkern_grpc_client_handling_seconds_count", method=validate) == called
    assert total(contacts, "lkern_grpc_server_handling_seconds_count", method=validate) == served


def test_outbox_and_consumer_figures(running: tuple[RunningStack, int]) -> None:
    stack, _ = running
    wait_for("orders applied every contact event", lambda: events_settled(stack))
    contacts, orders = scrape(stack, "contacts"), scrape(stack, "orders")
    assert total(contacts, "lkern_outbox_relay_leader") == 1  # one publisher among the workers
    assert total(contacts, "lkern_outbox_oldest_pending_age_seconds") == 0
    assert total(contacts, "lkern_outbox_publish_failures_total") == 0
    assert total(orders, "lkern_consumer_events_total", outcome="dead_lettered") == 0
    topics = label_values(orders, "lkern_consumer_lag_messages", "topic")
    assert topics == {"lkern.contacts.created", "lkern.contacts.updated", "lkern.contacts.deleted"}
    assert total(orders, "lkern_consumer_batch_size_sum") == EVENTS
    assert total(orders, "lkern_event_end_to_end_seconds_count") == EVENTS
    assert (
        total(orders, "lkern_event_end_to_end_seconds_count", topic="lkern.contacts.updated")
        == RENAMED
    )
    assert total(orders, "lkern_consumer_apply_seconds_count") >= 1
    assert total(orders, "lkern_consumer_last_progress_timestamp_seconds") > time.time() - 600


def test_lkern_status_shows_the_live_figures(running: tuple[RunningStack, int]) -> None:
    stack, _ = running
    wait_for("orders applied every contact event", lambda: events_settled(stack))
    environment = dict(os.environ)
    for name, port in stack.ports.items():
        environment[f"LKERN_{name.upper()}"] = str(port)
    shown = subprocess.run(
        [str(LKERN), "status", "--interval", "0.5"],
        capture_output=True,
        text=True,
        env={**environment, "COLUMNS": "200"},
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for expected in (
        "HTTP",
        "gRPC in",
        "gRPC out",
        "DB pool",
        "0 pending",
        "lag 0",
        "event latency",
    ):
        assert expected in shown.stdout, shown.stdout
