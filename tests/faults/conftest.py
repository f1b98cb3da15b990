"""
================================================================
FILE: conftest.py
PATH: /tests/faults/conftest.py
DESCRIPTION: Fault suite fixtures: the real stack, its processes, its databases as the truth
VERSION: v1.2.0
UPDATED: 2026-12-02 09:20:00
================================================================

Each fault test drives the stack `lkern up` starts (as `make up` does), injects one fault
(pause, kill, stop) into one of its processes and counts, with the databases as the truth:
every acknowledged write stored, every event applied once, read models equal to the source.
The figures each test records are printed at the end of the run (docs/reliability.md).
"""

# === IMPORTS ===
from collections.abc import Iterator
from typing import Any

import asyncpg
import psutil
import pytest

from lkern_devstack.testing import eventually
from tests.e2e.conftest import RunningStack, paused, ready_stack  # noqa: F401 (paused: for the tests)

# === CONSTANTS ===
DATABASES = {"contacts": "lkms101_contacts", "orders": "lkms102_orders"}
SERVICE_FOLDERS = {"contacts": "lkms101-contacts", "orders": "lkms102-orders"}
FIGURES: list[tuple[str, dict[str, Any]]] = []


# === THE STACK'S PROCESSES ===
def service_process(stack: RunningStack, service: str) -> psutil.Process:
    """The main process of ``service`` ("contacts" or "orders") that `lkern up` started."""
    for process in stack.descendants():
        try:
            if "-m app" in " ".join(process.cmdline()) and process.cwd().endswith(
                SERVICE_FOLDERS[service]
            ):
                return process
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"the {service} process is not running")


def broker_process(stack: RunningStack) -> psutil.Process:
    """The stack's Kafka-protocol broker (Tansu)."""
    for process in stack.descendants():
        try:
            if "tansu" in " ".join(process.cmdline()):
                return process
        except psutil.NoSuchProcess:
            continue
    raise AssertionError("the broker is not running")


# === THE DATABASES ===
def database_url(stack: RunningStack, service: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{stack.ports['postgres_port']}/{DATABASES[service]}"


async def fetch(stack: RunningStack, service: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``query`` in ``service``'s database, as dicts (a fresh connection each time)."""
    connection = await asyncpg.connect(database_url(stack, service))
    try:
        return [dict(row) for row in await connection.fetch(query, *args)]
    finally:
        await connection.close()


async def contact_versions(stack: RunningStack, service: str, ids: list[int]) -> dict[int, int]:
    """Contact id → version, in contacts (the source) or in orders' read model."""
    table = "contacts" if service == "contacts" else "contacts_read_model"
    query = f"SELECT id, version FROM {table} WHERE id = ANY($1::int[])"
    return {row["id"]: row["version"] for row in await fetch(stack, service, query, ids)}


async def unapplied_events(stack: RunningStack, ids: list[int]) -> int:
    """
    Contact events of ``ids`` that contacts published but orders has not applied (its inbox
    keeps each applied event id once: its primary key makes a second apply impossible).
    """
    published = await fetch(
        stack,
        "contacts",
        "SELECT event_id FROM outbox_events WHERE key = ANY($1::text[])",
        [str(i) for i in ids],
    )
    applied = await fetch(
        stack,
        "orders",
        "SELECT event_id FROM inbox_events WHERE event_id = ANY($1::uuid[])",
        [row["event_id"] for row in published],
    )
    return len(published) - len(applied)


async def every_event_applied(stack: RunningStack, ids: list[int], timeout_s: float = 120) -> None:
    """
    Wait until orders has applied every contact event of ``ids``. A read model equal to the
    source does not prove it: created and updated events travel on different topics, so the
    updates can land (and win the version guard) before the creates are read.
    """

    async def all_applied() -> bool:
        return await unapplied_events(stack, ids) == 0

    await eventually(all_applied, "every contact event applied by orders", timeout_s)


# === FIGURES ===
def record_figures(test: str, **figures: Any) -> None:
    """Keep one test's figures for the summary at the end of the run."""
    FIGURES.append((test, figures))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault figures")
    for test, figures in FIGURES:
        shown = ", ".join(f"{name}={value}" for name, value in figures.items())
        terminalreporter.write_line(f"{test}: {shown}")


# === FIXTURES ===
@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    """The whole system started by the real `lkern up`, shared by one test module."""
    with ready_stack() as running:
        yield running
