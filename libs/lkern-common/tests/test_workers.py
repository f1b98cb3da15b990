"""
================================================================
FILE: test_workers.py
PATH: /libs/lkern-common/tests/test_workers.py
DESCRIPTION: Several HTTP workers: gRPC servers sharing a port on purpose, the port check at start
VERSION: v1.1.0
UPDATED: 2026-12-02 03:05:00
================================================================
"""

# === IMPORTS ===
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lkern_common.grpc_server import GrpcServer
from lkern_common.web.serve import check_port_free
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import TEST_CLIENT, shared_dev_pki, tls_channel

# === CONSTANTS ===
SERVICE = "lkms101-contacts"


# === HELPERS ===
def worker(pki: DevPki, port: int, *, reuse_port: bool = True) -> GrpcServer:
    """One worker's gRPC server (mutual TLS, as every worker runs it)."""
    return GrpcServer(
        tls=pki.tls_files(SERVICE), host="127.0.0.1", port=port, reuse_port=reuse_port
    )


async def serving(port: int) -> bool:
    """A new channel's health check answers SERVING (over mutual TLS)."""
    async with tls_channel(shared_dev_pki(), f"127.0.0.1:{port}", TEST_CLIENT) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs' types know no aio
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def first_worker(dev_pki: DevPki) -> AsyncIterator[GrpcServer]:
    server = worker(dev_pki, 0)
    await server.start()
    yield server
    await server.stop(0)


# === TESTS ===
async def test_workers_share_the_grpc_port(first_worker: GrpcServer, dev_pki: DevPki) -> None:
    second = worker(dev_pki, first_worker.port)
    assert await second.start() == first_worker.port
    try:
        assert await serving(first_worker.port)
        await first_worker.stop(0)  # one worker going away leaves the port served
        assert await serving(second.port)
    finally:
        await second.stop(0)


async def test_a_server_without_reuse_port_cannot_join(
    first_worker: GrpcServer, dev_pki: DevPki
) -> None:
    stranger = worker(dev_pki, first_worker.port, reuse_port=False)
    with pytest.raises(RuntimeError):
        await stranger.start()


async def test_port_check_before_starting_workers(first_worker: GrpcServer) -> None:
    with pytest.raises(SystemExit, match=f"gRPC port {first_worker.port} on 127.0.0.1 is already"):
        check_port_free("127.0.0.1", first_worker.port, "The gRPC")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    check_port_free("127.0.0.1", free, "The gRPC")  # nothing listens: no error
