"""
================================================================
FILE: test_stack_restart.py
PATH: /tests/faults/test_stack_restart.py
DESCRIPTION: Faults: Ctrl-C during writes, then up again; a fresh broker with an existing database
VERSION: v1.0.0
UPDATED: 2026-12-02 06:40:00
================================================================

Each test runs two `lkern up` on one data folder (PostgreSQL's data is kept, the memory-only
broker is new the second time), as `make up` after a Ctrl-C does.

- Ctrl-C (SIGINT to `lkern` only, as a terminal sends it: the stack's processes are in their
  own sessions) stops contacts first, lets orders read what was published, then stops orders,
  the broker and PostgreSQL: nothing acknowledged is lost, every event is applied once, and
  the read model equals contacts after the second start.
- A read model left behind by lost events (rows missing, rows older) is rebuilt from contacts
  when orders finds its consumer group without offsets on the new broker, and again on demand
  by `lkern resync orders`.
"""

# === IMPORTS ===
import asyncio
import os
import signal
import subprocess
import time

import psutil
import pytest

from lkern_devstack.testing import eventually
from tests.e2e.conftest import (
    LKERN,
    RunningStack,
    _stack_environment,
    start_stack,
    stop_stack,
    wait_until_ready,
)
from tests.faults.conftest import contact_versions, fetch, record_figures
from tests.faults.writers import ContactWriters, all_contact_ids, assert_nothing_lost

# === CONSTANTS ===
WRITES = 400
STOPPED_IN_ORDER = "Stopped: lkms101-contacts, lkms102-orders, Kafka broker, PostgreSQL."


# === HELPERS ===
async def started(data_dir: object = None) -> RunningStack:
    stack = start_stack(data_dir)  # type: ignore[arg-type]
    await asyncio.to_thread(wait_until_ready, stack)
    return stack


async def stopped(stack: RunningStack, signum: signal.Signals) -> int:
    """Send ``signum`` to `lkern` alone; its exit code once everything stopped."""
    os.kill(stack.process.pid, signum)
    return await asyncio.to_thread(stack.process.wait, 180)


def in_own_session(stack: RunningStack) -> bool:
    """True when no process of the stack shares `lkern`'s process group (a terminal's Ctrl-C)."""
    group = os.getpgid(stack.process.pid)
    for process in stack.descendants():
        if process.pid == stack.process.pid:
            continue
        try:
            if os.getpgid(process.pid) == group:
                return False
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return True


async def make_stale(stack: RunningStack, ids: list[int]) -> None:
    """What lost events leave: a third of the rows missing, a third one version behind."""
    await fetch(
        stack, "orders", "DELETE FROM contacts_read_model WHERE id = ANY($1::int[])", ids[::3]
    )
    await fetch(
        stack,
        "orders",
        "UPDATE contacts_read_model SET version = version - 1, name = 'Stale' "
        "WHERE id = ANY($1::int[]) AND version > 1",
        ids[1::3],
    )


# === TESTS ===
@pytest.mark.asyncio
async def test_ctrl_c_during_writes_then_up_again_loses_nothing() -> None:
    first = await started()
    second: RunningStack | None = None
    try:
        assert in_own_session(first), "a process of the stack would get the terminal's Ctrl-C"
        writers = ContactWriters(first, tag="ctrl-c")
        writing = asyncio.create_task(writers.run())
        await writers.until(WRITES)
        began = time.monotonic()
        code = await stopped(first, signal.SIGINT)
        stop_s = time.monotonic() - began
        writers.stop.set()
        await writing
        assert code == 0, first.text()
        assert STOPPED_IN_ORDER in first.text()
        assert first.descendants() == []

        second = await started(first.data_dir)
        caught_up_s, events = await assert_nothing_lost(second, writers, timeout_s=180)
    finally:
        if second is not None:
            stop_stack(second)
        stop_stack(first)
    record_figures(
        "Ctrl-C during writes, then up again",
        writes=writers.writes,
        failed_writes=writers.failures,
        events=events,
        stop_s=round(stop_s, 1),
        read_model_caught_up_after_up_s=round(caught_up_s, 2),
    )


@pytest.mark.asyncio
async def test_a_fresh_broker_with_an_existing_database_resyncs_the_read_model() -> None:
    first = await started()
    second: RunningStack | None = None
    try:
        writers = ContactWriters(first, tag="fresh-broker")
        writing = asyncio.create_task(writers.run())
        await writers.until(WRITES)
        writers.stop.set()
        await writing
        await assert_nothing_lost(first, writers, timeout_s=180)
        ids = await all_contact_ids(first, writers.tag)
        await make_stale(first, ids)
        source = await contact_versions(first, "contacts", ids)
        assert await contact_versions(first, "orders", ids) != source
        assert await stopped(first, signal.SIGTERM) == 0, first.text()

        began = time.monotonic()
        second = await started(first.data_dir)

        async def resynced() -> bool:
            return await contact_versions(second, "orders", ids) == source  # type: ignore[arg-type]

        await eventually(resynced, "the read model rebuilt from contacts", 180)
        resync_s = time.monotonic() - began
        resync_lines = [line for line in second.output if "read model resynced from" in line]
        assert resync_lines, second.text()
        resync_took = resync_lines[0].rsplit(" in ", 1)[1]

        # On demand, on the running stack.
        await make_stale(second, ids)
        env = _stack_environment() | {
            "LKERN_ORDERS_HTTP_PORT": str(second.ports["orders_http_port"])
        }
        on_demand = await asyncio.to_thread(
            subprocess.run,
            [str(LKERN), "resync", "orders", "--data-dir", str(second.data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert on_demand.returncode == 0, on_demand.stdout + on_demand.stderr
        assert "lkms102-orders resynced" in on_demand.stdout
        assert await contact_versions(second, "orders", ids) == source
    finally:
        if second is not None:
            stop_stack(second)
        stop_stack(first)
    record_figures(
        "fresh broker, existing database",
        contacts=len(ids),
        stale_rows=len(ids[::3]) + len(ids[1::3]),
        up_until_read_model_rebuilt_s=round(resync_s, 1),
        resync_took=resync_took,
    )
