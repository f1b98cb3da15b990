"""
================================================================
FILE: writers.py
PATH: /tests/faults/writers.py
DESCRIPTION: Fault suite: contact writes that go on through a fault, and what they were told
VERSION: v1.0.0
UPDATED: 2026-12-02 09:20:00
================================================================

The writers create contacts and rename each (every write an event for orders), several at a
time, until told to stop; a write that fails (the service is down, a 503) is counted and the
writer goes on. What was acknowledged is the test's promise to check against the databases.
"""

# === IMPORTS ===
import asyncio
import time
from dataclasses import dataclass, field

import httpx

from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack
from tests.faults.conftest import contact_versions, every_event_applied, fetch

# === CONSTANTS ===
RETRY_PAUSE_S = 0.05


# === WRITERS ===
@dataclass
class ContactWriters:
    """Concurrent create-then-rename loops against contacts' REST API."""

    stack: RunningStack
    tag: str
    concurrency: int = 8
    # Contact id → the highest version a write of it was acknowledged with.
    acknowledged: dict[int, int] = field(default_factory=dict)
    writes: int = 0
    failures: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _writer(self, client: httpx.AsyncClient, number: int) -> None:
        url = f"{self.stack.url('contacts')}/api/v1/contacts/"
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {"name": f"{self.tag} {number}-{n}", "email": f"{self.tag}-{number}-{n}@x.org"}
            contact_id = await self._write(client.post(url, json=body), 201)
            if contact_id is not None and not self.stop.is_set():
                await self._write(client.put(f"{url}{contact_id}", json={"name": "Renamed"}), 200)

    async def _write(self, request: object, expected: int) -> int | None:
        try:
            response = await request  # type: ignore[misc]
        except httpx.HTTPError:
            response = None
        if response is None or response.status_code != expected:
            self.failures += 1
            await asyncio.sleep(RETRY_PAUSE_S)
            return None
        data = response.json()
        self.writes += 1
        self.acknowledged[data["id"]] = max(self.acknowledged.get(data["id"], 0), data["version"])
        contact_id: int = data["id"]
        return contact_id

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.stack.token()}"}
        async with httpx.AsyncClient(timeout=10.0, headers=headers) as client:
            await asyncio.gather(*(self._writer(client, n) for n in range(self.concurrency)))

    async def until(self, writes: int, timeout_s: float = 300) -> None:
        """Wait until ``writes`` writes in all have been acknowledged."""
        await eventually(lambda: self.writes >= writes, f"{writes} writes acknowledged", timeout_s)


# === THE TRUTH ===
async def all_contact_ids(stack: RunningStack, tag: str) -> list[int]:
    """Every contact of this test in contacts' database (acknowledged or not)."""
    rows = await fetch(stack, "contacts", "SELECT id FROM contacts WHERE email LIKE $1", f"{tag}-%")
    return sorted(row["id"] for row in rows)


async def assert_nothing_lost(
    stack: RunningStack, writers: ContactWriters, timeout_s: float
) -> tuple[float, int]:
    """
    Every acknowledged write is stored, orders' read model equals contacts (waited for up to
    ``timeout_s``), and every event contacts published was applied by orders once. Returns how
    long the read model took to catch up, and how many events there were.
    """
    began = time.monotonic()
    ids = await all_contact_ids(stack, writers.tag)
    source = await contact_versions(stack, "contacts", ids)
    missing = {i: v for i, v in writers.acknowledged.items() if source.get(i, 0) < v}
    assert not missing, f"acknowledged writes not stored: {missing}"

    async def caught_up() -> bool:
        return await contact_versions(stack, "orders", ids) == source

    await eventually(caught_up, "orders' read model equals contacts", timeout_s)
    caught_up_s = time.monotonic() - began

    await every_event_applied(stack, ids, timeout_s)
    events = await fetch(
        stack,
        "contacts",
        "SELECT count(*) AS n FROM outbox_events WHERE key = ANY($1::text[])",
        [str(i) for i in ids],
    )
    return caught_up_s, int(events[0]["n"])
