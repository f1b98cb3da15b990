"""
================================================================
FILE: grpc_load.py
PATH: /tests/faults/grpc_load.py
DESCRIPTION: gRPC load for fault tests, in a process of its own: GetContact in a loop
VERSION: v1.0.0
UPDATED: 2026-12-02 06:15:00
================================================================

    python grpc_load.py <host:port> <pki folder> <caller> <contact id> <workers>

Calls contacts' GetContact (mutual TLS as <caller>) from <workers> concurrent loops until it
gets SIGTERM, then prints the count of each status code as JSON on stdout.

Why a process of its own: a process with live gRPC threads must not fork (grpcio's fork
handlers can crash the child), and the fault test forks `pg_ctl` while the load runs.
"""

# === IMPORTS ===
import asyncio
import json
import signal
import sys
from collections import Counter
from pathlib import Path

import grpc
import grpc.aio

from lkern_common.grpc_contracts.contacts import contacts_pb2, contacts_pb2_grpc
from lkern_devstack.dev_pki import DevPki

# === CONSTANTS ===
CALL_TIMEOUT_S = 10.0
PAUSE_S = 0.1


# === LOAD ===
async def call_until_stopped(
    stub: contacts_pb2_grpc.ContactsServiceStub,
    contact_id: int,
    stop: asyncio.Event,
    counts: Counter[str],
) -> None:
    request = contacts_pb2.GetContactRequest(id=contact_id)
    while not stop.is_set():
        try:
            await stub.GetContact(request, timeout=CALL_TIMEOUT_S)
            counts[grpc.StatusCode.OK.name] += 1
        except grpc.aio.AioRpcError as error:
            counts[error.code().name] += 1
        await asyncio.sleep(PAUSE_S)


async def main(target: str, pki_dir: str, caller: str, contact_id: int, workers: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    credentials = DevPki(Path(pki_dir)).tls_files(caller).channel_credentials()
    counts: Counter[str] = Counter()
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = contacts_pb2_grpc.ContactsServiceStub(channel)
        await asyncio.gather(
            *(call_until_stopped(stub, contact_id, stop, counts) for _ in range(workers))
        )
    sys.stdout.write(json.dumps(dict(counts)) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
