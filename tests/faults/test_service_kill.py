"""
================================================================
FILE: test_service_kill.py
PATH: /tests/faults/test_service_kill.py
DESCRIPTION: Fault: contacts or orders SIGKILLed mid-burst of writes, restarted alone by lkern up
VERSION: v1.0.0
UPDATED: 2026-12-02 06:40:00
================================================================

Proves: `lkern up` restarts a service that dies (after its backoff) and leaves the rest running
(the memory-only broker keeps the events not read yet); every acknowledged write is stored,
every event contacts published is applied by orders once, and orders' read model equals
contacts once it has caught up.
"""

# === IMPORTS ===
import asyncio
import contextlib
import signal
import time

import httpx
import psutil
import pytest

from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack
from tests.faults.conftest import (
    SERVICE_FOLDERS,
    broker_process,
    record_figures,
    service_process,
)
from tests.faults.writers import ContactWriters, assert_nothing_lost

# === CONSTANTS ===
WRITES_BEFORE_KILL = 300
WRITES_AFTER_RESTART = 300
OTHER = {"contacts": "orders", "orders": "contacts"}


# === HELPERS ===
async def ready(stack: RunningStack, service: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(f"{stack.url(service)}/ready")).status_code == 200
    return False


# === TESTS ===
@pytest.mark.asyncio
@pytest.mark.parametrize("victim", ["contacts", "orders"])
async def test_a_service_killed_mid_burst_is_restarted_alone_and_nothing_is_lost(
    stack: RunningStack, victim: str
) -> None:
    killed = service_process(stack, victim)
    untouched = {
        "broker": broker_process(stack).pid,
        OTHER[victim]: service_process(stack, OTHER[victim]).pid,
    }
    writers = ContactWriters(stack, tag=f"kill-{victim}")
    writing = asyncio.create_task(writers.run())
    try:
        await writers.until(WRITES_BEFORE_KILL)
        killed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        psutil.wait_procs([killed], timeout=10)

        async def restarted() -> bool:
            try:
                again = service_process(stack, victim)
            except AssertionError:
                return False
            return again.pid != killed.pid and await ready(stack, victim)

        await eventually(restarted, f"{victim} restarted by lkern up", 180)
        restarted_s = time.monotonic() - killed_at
        writes_at_restart = writers.writes
        await writers.until(writes_at_restart + WRITES_AFTER_RESTART)
    finally:
        writers.stop.set()
        await writing

    # Restarted alone: the broker and the other service are the same processes.
    assert broker_process(stack).pid == untouched["broker"]
    assert service_process(stack, OTHER[victim]).pid == untouched[OTHER[victim]]
    folder = SERVICE_FOLDERS[victim]
    assert any(f"{folder} exited (code -9)" in line for line in stack.output), stack.text()
    assert any(f"{folder} restarted (restart" in line for line in stack.output)
    caught_up_s, events = await assert_nothing_lost(stack, writers, timeout_s=180)
    record_figures(
        f"{victim} SIGKILLed mid-burst",
        writes=writers.writes,
        failed_writes=writers.failures,
        contacts=len(writers.acknowledged),
        events=events,
        back_ready_s=round(restarted_s, 1),
        read_model_caught_up_s=round(caught_up_s, 2),
    )
