"""
================================================================
FILE: test_metrics.py
PATH: /services/lkms101-contacts/tests/test_metrics.py
DESCRIPTION: /metrics of the contacts app in-process: route templates, statuses, outbox, pool
VERSION: v1.1.0
UPDATED: 2026-12-02 10:45:00
================================================================

The app runs in the test process, so its figures are the process's own (no multiprocess
folder); tests/e2e/test_metrics.py checks the real stack with one and two workers. The figures
accumulate over the test session, so each test compares before and after its own traffic.
"""

# === IMPORTS ===
import asyncio
import re

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.database import Database
from lkern_devstack.testing import eventually

# === CONSTANTS ===
API = "/api/v1/contacts/"
ITEM_ROUTE = "/api/v1/contacts/{contact_id}"
RAW_ID = re.compile(r"/\d+(/|$)")  # a path segment that is a number: an id, not a template


# === HELPERS ===
async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics: (name, labels) → value."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# === TESTS ===
async def test_pool_connections_in_use_follow_checkouts(
    client: httpx.AsyncClient, db: Database
) -> None:
    in_use = "lkern_db_pool_connections_in_use"
    before = await scrape(client)
    idle = value(before, in_use, pool="orm")
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
        held = value(await scrape(client), in_use, pool="orm")
    assert held == idle + 1
    assert value(await scrape(client), in_use, pool="orm") == idle
    # The driver pool's statements (hot reads): one connection while the statement runs, here
    # until the transaction that holds the lock the statement waits for ends.
    async with db.transaction() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(101)"))
        statement = asyncio.create_task(db.fetch_row("SELECT pg_advisory_xact_lock(101)"))

        async def driver_connection_held() -> bool:
            return value(await scrape(client), in_use, pool="driver") == 1

        await eventually(driver_connection_held, "the driver pool counts its connection in use")
    await statement
    assert value(await scrape(client), in_use, pool="driver") == 0

    async def waits_timed() -> bool:
        waits, now = "lkern_db_pool_wait_seconds_count", await scrape(client)
        return all(
            value(now, waits, pool=pool) > value(before, waits, pool=pool)
            for pool in ("orm", "driver")
        )

    # Tallied and written once a second (lkern_common.metrics.buffer).
    await eventually(waits_timed, "both pools' waits for a connection are timed")


async def test_metrics_is_public_and_in_the_prometheus_format(
    anonymous_client: httpx.AsyncClient,
) -> None:
    samples = await scrape(anonymous_client)
    assert value(samples, "lkern_db_pool_size", pool="orm") == 10
    assert value(samples, "lkern_db_pool_size", pool="driver") == 10
    assert any(name == "process_resident_memory_bytes" for name, _ in samples)


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient, anonymous_client: httpx.AsyncClient
) -> None:
    before = await scrape(client)
    created = [
        await client.post(API, json={"name": f"Metric {i}", "email": f"metric{i}@example.com"})
        for i in range(3)
    ]
    assert [response.status_code for response in created] == [201] * 3
    for response in created:
        assert (await client.get(f"{API}{response.json()['id']}")).status_code == 200
    assert (await client.head(f"{API}{created[0].json()['id']}")).status_code == 200
    assert (await client.get(f"{API}999999")).status_code == 404
    assert (await anonymous_client.get(API)).status_code == 401
    assert (await client.get("/no/such/path/42")).status_code == 404
    after = await scrape(client)

    def grew(method: str, route: str, status: str) -> float:
        name = "lkern_http_requests_total"
        labels = {"method": method, "route": route, "status": status}
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("POST", API, "201") == 3
    assert grew("GET", ITEM_ROUTE, "200") == 3
    assert grew("HEAD", ITEM_ROUTE, "200") == 1
    assert grew("GET", ITEM_ROUTE, "404") == 1
    assert grew("GET", API, "401") == 1
    assert grew("GET", "unmatched", "404") == 1
    timed = "lkern_http_request_duration_seconds_count"
    assert (
        value(after, timed, method="POST", route=API)
        - value(before, timed, method="POST", route=API)
        == 3
    )
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("lkern_http")}
    assert not any(RAW_ID.search(route or "") for route in routes), routes


async def test_outbox_figures_follow_the_relay(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    response = await client.post(API, json={"name": "Outbox Metric", "email": "om@example.com"})
    assert response.status_code == 201

    async def published_and_drained() -> bool:
        after = await scrape(client)
        published = value(after, "lkern_outbox_published_events_total") - value(
            before, "lkern_outbox_published_events_total"
        )
        return (
            published >= 1
            and value(after, "lkern_outbox_pending_events") == 0
            and value(after, "lkern_outbox_relay_leader") == 1
        )

    await eventually(published_and_drained, "the event is published by the leading relay")
    after = await scrape(client)
    assert value(after, "lkern_outbox_relay_leader") == 1
    assert value(after, "lkern_outbox_oldest_pending_age_seconds") == 0
