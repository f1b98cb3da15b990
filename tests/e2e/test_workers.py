"""
================================================================
FILE: test_workers.py
PATH: /tests/e2e/test_workers.py
DESCRIPTION: End-to-end with HTTP_WORKERS=2: each worker serves gRPC on the shared port; REST,
             gRPC validation and contact events work
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================

Each worker runs the whole app (docs/performance.md): REST on the shared HTTP socket, a gRPC
server on the shared gRPC port (SO_REUSEPORT), an outbox relay (one leads) and, in orders, a
member of the contact events consumer group. Runs in its own process tree (`lkern up`), not in
the test process: the service suites run an in-process gRPC server, which must not be forked.
"""

# === IMPORTS ===
import contextlib
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.e2e.conftest import RunningStack, ready_stack

# === CONSTANTS ===
WORKERS = 2
WAIT_S = 30.0


# === FIXTURES ===
@pytest.fixture(scope="module")
def two_workers() -> Iterator[RunningStack]:
    with ready_stack(HTTP_WORKERS=str(WORKERS)) as running:
        yield running


# === HELPERS ===
def grpc_listeners(stack: RunningStack, service: str) -> int:
    """How many worker processes listen on the service's gRPC port."""
    port = stack.ports[f"{service}_grpc_port"]
    count = 0
    for process in stack.descendants():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(process.cmdline()) and any(
                connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
                for connection in process.net_connections(kind="tcp")
            ):
                count += 1
    return count


# === TESTS ===
def test_every_worker_serves_grpc_on_the_shared_port(two_workers: RunningStack) -> None:
    for service in ("contacts", "orders"):
        deadline = time.monotonic() + WAIT_S
        while grpc_listeners(two_workers, service) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.2)  # /ready answered when the first worker was up
        assert grpc_listeners(two_workers, service) == WORKERS, service


def test_rest_grpc_validation_and_events_with_two_workers(two_workers: RunningStack) -> None:
    contacts, orders = two_workers.url("contacts"), two_workers.url("orders")
    with two_workers.client() as client:
        created = [
            client.post(
                f"{contacts}/api/v1/contacts/",
                json={"name": f"Worker {i}", "email": f"worker{i}@example.com"},
                headers={"Connection": "close"},  # new connections: both workers take some
            )
            for i in range(6)
        ]
        assert [response.status_code for response in created] == [201] * 6
        ids = [response.json()["id"] for response in created]
        for contact_id in ids:  # validated over gRPC by contacts' workers
            order = client.post(
                f"{orders}/api/v1/orders/",
                json={
                    "contact_id": contact_id,
                    "lines": [{"description": "Bolt", "quantity": "1", "unit_price": "1.00"}],
                },
                headers={"Connection": "close"},
            )
            assert order.status_code == 201, order.text
        order_id = order.json()["id"]

        renamed = client.put(f"{contacts}/api/v1/contacts/{ids[-1]}", json={"name": "Renamed"})
        assert renamed.status_code == 200
        deadline = time.monotonic() + WAIT_S
        name = ""
        while time.monotonic() < deadline:  # the event reaches one consumer member
            name = client.get(f"{orders}/api/v1/orders/{order_id}").json()["contact"]["name"]
            if name == "Renamed":
                break
            time.sleep(0.2)
        assert name == "Renamed"
