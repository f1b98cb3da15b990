"""
================================================================
FILE: test_contacts_pause.py
PATH: /tests/faults/test_contacts_pause.py
DESCRIPTION: Fault: contacts paused (SIGSTOP) while orders are created and read
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Proves: while contacts does not answer, creating an order is a 503 with Retry-After (first
after the gRPC deadline, then at once once orders' circuit breaker is open); reading orders is
not slowed (contacts is asked before a create's transaction, so no pooled connection waits
for it); nothing is stored for a refused create; after SIGCONT creates succeed again once the
breaker's half-open probe finds contacts back.
"""

# === IMPORTS ===
import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack
from tests.faults.conftest import fetch, paused, record_figures, service_process

# === CONSTANTS ===
FIRST_WAVE = 30  # creates at once, when the breaker is still closed (each waits the deadline)
SECOND_WAVE = 20  # creates once the breaker is open: each must fail fast
FAST_S = 1.0  # "well under a second" for a create refused by the open breaker
READ_BOUND_S = 1.0  # a generous bound for one order read while contacts is paused
PRELOADED_ORDERS = 5


# === HELPERS ===
def order_body(contact_id: int, n: int) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "lines": [{"description": f"Item {n}", "quantity": "1", "unit_price": "9.99"}],
    }


async def order_count(stack: RunningStack) -> int:
    return int((await fetch(stack, "orders", "SELECT count(*) AS n FROM orders"))[0]["n"])


# === TESTS ===
@pytest.mark.asyncio
async def test_contacts_paused_gives_fast_503s_and_order_reads_stay_fast(
    stack: RunningStack,
) -> None:
    orders = f"{stack.url('orders')}/api/v1/orders/"
    headers = {"Authorization": f"Bearer {stack.token()}"}
    async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:
        created = await client.post(
            f"{stack.url('contacts')}/api/v1/contacts/",
            json={"name": "Paused Contacts", "email": f"pause-{uuid.uuid4().hex[:8]}@example.com"},
        )
        assert created.status_code == 201, created.text
        contact_id = int(created.json()["id"])
        order_ids = []
        for n in range(PRELOADED_ORDERS):
            response = await client.post(orders, json=order_body(contact_id, n))
            assert response.status_code == 201, response.text
            order_ids.append(int(response.json()["id"]))
        before = await order_count(stack)

        read_latencies: list[float] = []
        read_statuses: list[int] = []
        reading = asyncio.Event()

        async def read_orders_meanwhile() -> None:
            n = 0
            while not reading.is_set():
                url = f"{orders}{order_ids[n % len(order_ids)]}" if n % 2 else f"{orders}?limit=20"
                started = time.monotonic()
                response = await client.get(url)
                read_latencies.append(time.monotonic() - started)
                read_statuses.append(response.status_code)
                n += 1
                await asyncio.sleep(0.05)

        async def create(n: int, key: bool) -> tuple[int, float, str | None]:
            extra = {"Idempotency-Key": str(uuid.uuid4())} if key else {}
            started = time.monotonic()
            response = await client.post(orders, json=order_body(contact_id, n), headers=extra)
            return (
                response.status_code,
                time.monotonic() - started,
                response.headers.get("Retry-After"),
            )

        with paused(service_process(stack, "contacts")):
            reader = asyncio.create_task(read_orders_meanwhile())
            first = await asyncio.gather(*(create(n, key=n % 2 == 0) for n in range(FIRST_WAVE)))
            second = [await create(n, key=n % 2 == 0) for n in range(SECOND_WAVE)]
            reading.set()
            await reader
            paused_reads = list(read_latencies)
        resumed_at = time.monotonic()

        for status, _took, retry_after in first + second:
            assert status == 503, (status, first, second)
            assert retry_after is not None and int(retry_after) >= 1
        second_wave_s = [took for _status, took, _ in second]
        assert max(second_wave_s) < FAST_S, second_wave_s
        assert set(read_statuses) == {200}, read_statuses
        assert len(paused_reads) >= 10 and max(paused_reads) < READ_BOUND_S, paused_reads
        assert await order_count(stack) == before  # a refused create stores nothing

        async def a_create_succeeds() -> bool:
            status, _took, _ = await create(0, key=True)
            return status == 201

        await eventually(a_create_succeeds, "orders can be created after SIGCONT", timeout_s=60)
        recovery = time.monotonic() - resumed_at

    first_wave_s = sorted(took for _status, took, _ in first)
    record_figures(
        "contacts paused",
        creates=FIRST_WAVE + SECOND_WAVE,
        first_wave_503_s=f"{first_wave_s[0]:.2f}..{first_wave_s[-1]:.2f}",
        open_breaker_503_max_s=round(max(second_wave_s), 3),
        reads=len(paused_reads),
        read_max_s=round(max(paused_reads), 3),
        read_median_s=round(sorted(paused_reads)[len(paused_reads) // 2], 3),
        recovery_s=round(recovery, 2),
    )
