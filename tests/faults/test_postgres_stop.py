"""
================================================================
FILE: test_postgres_stop.py
PATH: /tests/faults/test_postgres_stop.py
DESCRIPTION: Fault: the stack's PostgreSQL stopped for 10 s under REST and gRPC load
VERSION: v1.0.0
UPDATED: 2026-12-02 06:05:00
================================================================

Proves: while PostgreSQL shuts down, is away and starts up again, every answer is either a
success or "unavailable, retry" (REST 503 with Retry-After, gRPC UNAVAILABLE): never a 500 or
INTERNAL, whichever error the driver raised (shutting down, refused, starting up, a pooled
connection that died); each 503 is logged in one line with its request id, without a stack
trace; every write that was acknowledged is stored once the server is back.
"""

# === IMPORTS ===
import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from lkern_devstack.postgres import EmbeddedPostgres
from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack
from tests.faults.conftest import fetch, record_figures

# === CONSTANTS ===
DOWN_SECONDS = 10.0
WORKERS = 6  # REST loops in the test
GRPC_WORKERS = 2  # GetContact loops in the gRPC load process
LOAD_BEFORE_S = 2.0
LOAD_AFTER_S = 3.0
GRPC_LOAD = Path(__file__).with_name("grpc_load.py")
# The identity orders uses towards contacts (allowed to read contacts over gRPC).
GRPC_CALLER = "lkms102-orders"


# === HELPERS ===
def stack_postgres(stack: RunningStack) -> EmbeddedPostgres:
    """The PostgreSQL server `lkern up` started: same data folder, port and address."""
    return EmbeddedPostgres(stack.data_dir / "postgres", stack.ports["postgres_port"], "127.0.0.1")


def postmaster_pid(stack: RunningStack) -> int:
    """The running postmaster among the stack's processes (its data folder is on its cmdline)."""
    servers = {
        process.pid: process
        for process in stack.descendants()
        if process.name().startswith("postgres") and " -D " in " ".join(process.cmdline())
    }
    assert servers, "the stack's PostgreSQL is not among its processes"
    return next(pid for pid, process in servers.items() if process.ppid() not in servers)


def start_grpc_load(stack: RunningStack, contact_id: int) -> subprocess.Popen[str]:
    """
    GetContact in a loop, in a process of its own (tests/faults/grpc_load.py): this process
    forks pg_ctl, which a process with live gRPC threads must not do.
    """
    return subprocess.Popen(
        [
            sys.executable,
            str(GRPC_LOAD),
            f"127.0.0.1:{stack.ports['contacts_grpc_port']}",
            str(stack.data_dir / "pki"),
            GRPC_CALLER,
            str(contact_id),
            str(GRPC_WORKERS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def stop_grpc_load(process: subprocess.Popen[str]) -> Counter[str]:
    """SIGTERM the gRPC load; its status counts (``gRPC GetContact <CODE>``)."""
    process.terminate()
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    counts = json.loads(output.strip().splitlines()[-1])
    return Counter({f"gRPC GetContact {code}": count for code, count in counts.items()})


class Load:
    """REST writes and reads on both services, counted by outcome."""

    def __init__(self, stack: RunningStack, client: httpx.AsyncClient, contact_id: int) -> None:
        self.stack = stack
        self.client = client
        self.contact_id = contact_id
        self.outcomes: Counter[str] = Counter()
        self.bad: list[str] = []  # anything but success or "unavailable, retry"
        self.contacts_stored: list[int] = []
        self.orders_stored: list[int] = []
        self.last_success: dict[str, float] = {}  # what → monotonic time of its last 2xx
        self.stopping = asyncio.Event()

    async def run(self, worker: int) -> None:
        n = 0
        while not self.stopping.is_set():
            operation = (self.create_contact, self.create_order, self.read)[(worker + n) % 3]
            await operation(n)
            n += 1
            await asyncio.sleep(0.05)

    def _count_rest(self, what: str, response: httpx.Response, success: int) -> bool:
        status = response.status_code
        self.outcomes[f"{what} {status}"] += 1
        if status == success:
            self.last_success[what] = time.monotonic()
            return True
        if status == 503 and response.headers.get("Retry-After"):
            return False
        self.bad.append(f"{what}: {status} {response.text[:200]}")
        return False

    async def create_contact(self, n: int) -> None:
        body = {"name": f"Pg {n}", "email": f"pg-{uuid.uuid4().hex[:12]}@example.com"}
        response = await self.client.post(
            f"{self.stack.url('contacts')}/api/v1/contacts/", json=body
        )
        if self._count_rest("contacts POST", response, 201):
            self.contacts_stored.append(int(response.json()["id"]))

    async def create_order(self, n: int) -> None:
        body = {
            "contact_id": self.contact_id,
            "lines": [{"description": f"Pg {n}", "quantity": "1", "unit_price": "1.00"}],
        }
        response = await self.client.post(
            f"{self.stack.url('orders')}/api/v1/orders/",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())} if n % 2 else {},
        )
        if self._count_rest("orders POST", response, 201):
            self.orders_stored.append(int(response.json()["id"]))

    async def read(self, n: int) -> None:
        if n % 2:
            url = f"{self.stack.url('orders')}/api/v1/orders/?limit=5"
            self._count_rest("orders GET", await self.client.get(url), 200)
        else:
            url = f"{self.stack.url('contacts')}/api/v1/contacts/{self.contact_id}"
            self._count_rest("contacts GET", await self.client.get(url), 200)


# === TESTS ===
@pytest.mark.asyncio
async def test_postgres_stopped_10_s_under_load_gives_503_never_500(stack: RunningStack) -> None:
    headers = {"Authorization": f"Bearer {stack.token()}"}
    async with httpx.AsyncClient(timeout=60.0, headers=headers) as client:
        created = await client.post(
            f"{stack.url('contacts')}/api/v1/contacts/",
            json={"name": "Pg Stop", "email": f"pg-stop-{uuid.uuid4().hex[:8]}@example.com"},
        )
        assert created.status_code == 201, created.text
        load = Load(stack, client, int(created.json()["id"]))
        grpc_load = start_grpc_load(stack, load.contact_id)
        workers = [asyncio.create_task(load.run(worker)) for worker in range(WORKERS)]
        try:
            await asyncio.sleep(LOAD_BEFORE_S)
            postgres = stack_postgres(stack)
            old_postmaster = postmaster_pid(stack)
            log_mark = len(stack.output)
            stopping_at = time.monotonic()
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(postgres.start)
            started_at = time.monotonic()
            assert postmaster_pid(stack) != old_postmaster

            def writes_succeed_again() -> bool:
                return all(
                    load.last_success.get(what, 0.0) > started_at
                    for what in ("contacts POST", "orders POST")
                )

            await eventually(writes_succeed_again, "writes succeed again", timeout_s=120)
            recovery = time.monotonic() - started_at
            await asyncio.sleep(LOAD_AFTER_S)
        finally:
            load.stopping.set()
            await asyncio.gather(*workers, return_exceptions=True)
            grpc_outcomes = await asyncio.to_thread(stop_grpc_load, grpc_load)
        load.outcomes.update(grpc_outcomes)
        load.bad += [
            f"{name}: {count}"
            for name, count in grpc_outcomes.items()
            if not name.endswith((" OK", " UNAVAILABLE"))
        ]
        outage_s = started_at - stopping_at

    assert load.bad == [], load.bad[:20]
    unavailable = sum(
        count for name, count in load.outcomes.items() if name.endswith(("503", "UNAVAILABLE"))
    )
    assert unavailable > 0, load.outcomes  # the fault was felt
    assert grpc_outcomes["gRPC GetContact UNAVAILABLE"] > 0, grpc_outcomes  # by gRPC too

    # Every acknowledged write is stored.
    contacts = await fetch(
        stack, "contacts", "SELECT id FROM contacts WHERE id = ANY($1::int[])", load.contacts_stored
    )
    orders = await fetch(
        stack, "orders", "SELECT id FROM orders WHERE id = ANY($1::int[])", load.orders_stored
    )
    assert len(contacts) == len(set(load.contacts_stored))
    assert len(orders) == len(set(load.orders_stored))

    # Each 503 was logged once, in one line with its request id, without a stack trace.
    during = stack.output[log_mark:]
    unavailable_lines = [line for line in during if "database unavailable, answered 503" in line]
    assert unavailable_lines, "the 503s were not logged"
    assert all(not re.search(r"\[- ", line) for line in unavailable_lines), unavailable_lines[:3]
    tracebacks = [line for line in during if "Traceback (most recent call last)" in line]

    record_figures(
        "PostgreSQL stopped 10 s",
        requests=sum(load.outcomes.values()),
        unavailable=unavailable,
        grpc_calls=sum(grpc_outcomes.values()),
        errors_500=sum(
            c for name, c in load.outcomes.items() if name.endswith(("500", "INTERNAL"))
        ),
        acknowledged_writes=len(load.contacts_stored) + len(load.orders_stored),
        outage_s=round(outage_s, 1),
        recovery_s=round(recovery, 2),
        tracebacks_logged=len(tracebacks),
    )
    assert tracebacks == [], "\n".join(during[-200:])
