"""
================================================================
FILE: grpc_load.py
PATH: /bench/grpc_load.py
DESCRIPTION: gRPC load client (one process): GetContact or GetContactsByIds at N concurrent calls
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================

Run by the bench as its own process (``python -m bench.grpc_load …``), one or more at a time,
so that the client's CPU is not the bench's. Each process opens one channel (one HTTP/2
connection) and keeps ``--concurrency`` calls in flight (closed loop) for ``--seconds``; it
prints one JSON line: calls, errors, contacts received, and every call's latency in ms.
"""

# === IMPORTS ===
import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_devstack.dev_pki import DevPki

# === CONSTANTS ===
# The load calls contacts as the orders service does (mutual TLS, contacts:read).
CALLER = "lkms102-orders"

if TYPE_CHECKING:
    from lkern_common.grpc_contracts.contacts.contacts_pb2_grpc import ContactsServiceAsyncStub


# === LOAD ===
async def worker(
    stub: "ContactsServiceAsyncStub",
    method: str,
    max_id: int,
    batch: int,
    deadline: float,
    latencies: list[float],
    counts: dict[str, int],
) -> None:
    rng = random.Random()
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            if method == "GetContact":
                await stub.GetContact(
                    contacts_pb2.GetContactRequest(id=rng.randint(1, max_id)), timeout=5
                )
                counts["contacts"] += 1
            else:
                first = rng.randint(1, max_id - batch + 1)
                response = await stub.GetContactsByIds(
                    contacts_pb2.GetContactsByIdsRequest(ids=range(first, first + batch)),
                    timeout=5,
                )
                counts["contacts"] += len(response.contacts)
            counts["calls"] += 1
            latencies.append((time.perf_counter() - started) * 1000)
        except grpc.aio.AioRpcError:
            counts["errors"] += 1


async def run(
    target: str,
    method: str,
    concurrency: int,
    seconds: float,
    max_id: int,
    batch: int,
    pki_dir: Path,
) -> dict[str, Any]:
    latencies: list[float] = []
    counts = {"calls": 0, "errors": 0, "contacts": 0}
    credentials = DevPki(pki_dir).tls_files(CALLER).channel_credentials()
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub: ContactsServiceAsyncStub = contacts_pb2_grpc.ContactsServiceStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 10)
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(
            *(
                worker(stub, method, max_id, batch, deadline, latencies, counts)
                for _ in range(concurrency)
            )
        )
        elapsed = time.monotonic() - started
    return {**counts, "seconds": elapsed, "latencies_ms": [round(x, 3) for x in latencies]}


# === MAIN ===
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", choices=["GetContact", "GetContactsByIds"], required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-id", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pki-dir", type=Path, required=True)
    options = parser.parse_args()
    result = asyncio.run(
        run(
            options.target,
            options.method,
            options.concurrency,
            options.seconds,
            options.max_id,
            options.batch,
            options.pki_dir,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
