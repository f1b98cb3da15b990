"""
================================================================
FILE: test_broker_pause.py
PATH: /tests/faults/test_broker_pause.py
DESCRIPTION: Fault: the broker paused for 30 s while 500 contact writes go on
VERSION: v1.0.0
UPDATED: 2026-12-02 09:20:00
================================================================

Proves: contacts keeps acknowledging writes while the broker does not answer (the outbox holds
the events), and once the broker is back every event reaches orders exactly once: its read
model equals contacts and its inbox holds every published event id.
"""

# === IMPORTS ===
import asyncio
import time

import httpx
import pytest

from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack
from tests.faults.conftest import (
    broker_process,
    contact_versions,
    every_event_applied,
    paused,
    record_figures,
)

# === CONSTANTS ===
PAUSE_SECONDS = 30.0
CONTACTS = 250  # created, then each updated once: 500 writes
CONCURRENCY = 10


# === TESTS ===
@pytest.mark.asyncio
async def test_broker_paused_30_s_during_500_writes_loses_nothing(stack: RunningStack) -> None:
    contacts = f"{stack.url('contacts')}/api/v1/contacts/"
    limit = asyncio.Semaphore(CONCURRENCY)
    headers = {"Authorization": f"Bearer {stack.token()}"}
    async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:

        async def create(n: int) -> int:
            async with limit:
                body = {"name": f"Paused {n}", "email": f"paused-{n}@example.com"}
                response = await client.post(contacts, json=body)
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        async def rename(contact_id: int) -> None:
            async with limit:
                response = await client.put(f"{contacts}{contact_id}", json={"name": "Renamed"})
            assert response.status_code == 200, response.text

        with paused(broker_process(stack)):
            paused_at = time.monotonic()
            ids = await asyncio.gather(*(create(n) for n in range(CONTACTS)))
            await asyncio.gather(*(rename(contact_id) for contact_id in ids))
            writes_took = time.monotonic() - paused_at
            # The fault lasts its full length whatever the writes took.
            await asyncio.sleep(max(0.0, PAUSE_SECONDS - writes_took))
        resumed_at = time.monotonic()

    source = await contact_versions(stack, "contacts", ids)
    assert len(source) == CONTACTS and set(source.values()) == {2}

    async def read_model_caught_up() -> bool:
        return await contact_versions(stack, "orders", ids) == source

    await eventually(read_model_caught_up, "orders' read model equals contacts", timeout_s=120)
    await every_event_applied(stack, ids)
    recovery = time.monotonic() - resumed_at
    record_figures(
        "broker paused 30 s",
        writes=2 * CONTACTS,
        writes_during_pause_s=round(writes_took, 1),
        events=2 * CONTACTS,
        recovery_s=round(recovery, 2),
    )
