"""
================================================================
FILE: machine.py
PATH: /bench/machine.py
DESCRIPTION: Is the machine ours? CPU used by other programs during a run, and waiting for quiet
VERSION: v1.1.0
UPDATED: 2026-12-02 06:05:00
================================================================

The figures only mean something when the bench has the machine to itself. Before each run the
bench waits (a while) until the machine is nearly idle; during the run it measures how much CPU
went to processes that are not the bench's (not its descendants, not the PostgreSQL server of
its data folder). Each figure in the JSON carries that share, and the table flags runs where
other programs took a noticeable part of the machine.
"""

# === IMPORTS ===
import os
import time
from dataclasses import dataclass, field

import psutil

# === CONSTANTS ===
IDLE_CPU_PERCENT = 20.0  # % of all CPUs, over half a second
SETTLE_LIMIT_S = 60.0
# Other programs using more than this share of the machine during a run make it suspect.
BUSY_SHARE = 0.10


# === HELPERS ===
def wait_until_idle(limit_s: float | None = None) -> float:
    """
    Wait (at most ``limit_s``, default SETTLE_LIMIT_S: ``--idle-wait``) until the machine is
    nearly idle; returns the last busy %.
    """
    deadline = time.monotonic() + (SETTLE_LIMIT_S if limit_s is None else limit_s)
    busy = float(psutil.cpu_percent(interval=0.5))
    while busy > IDLE_CPU_PERCENT and time.monotonic() < deadline:
        busy = float(psutil.cpu_percent(interval=0.5))
    return busy


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


# === WATCH ===
@dataclass
class ForeignCpu:
    """
    CPU used by other programs between ``start()`` and ``stop()``, as a share of the machine.
    "Ours": this process and its descendants, and every process whose command line names
    ``own_marker`` (the stack's data folder: PostgreSQL and its backends run detached).
    """

    own_marker: str = ""
    share: float = 0.0
    top: list[tuple[str, float]] = field(default_factory=list)
    _start: dict[int, tuple[str, float]] = field(default_factory=dict)
    _started_at: float = 0.0

    def _foreign(self) -> dict[int, tuple[str, float]]:
        me = psutil.Process(os.getpid())
        ours = {me.pid, *(child.pid for child in me.children(recursive=True))}
        found: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter(["pid", "name", "cmdline"]):
            try:
                cmdline = " ".join(process.info["cmdline"] or [])
                if process.pid in ours or (self.own_marker and self.own_marker in cmdline):
                    continue
                if self.own_marker and any(
                    self.own_marker in " ".join(parent.cmdline()) for parent in process.parents()
                ):
                    continue  # a PostgreSQL backend of our server
                found[process.pid] = (cmdline[:80] or process.info["name"], _cpu_seconds(process))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def start(self) -> None:
        self._start = self._foreign()
        self._started_at = time.monotonic()

    def stop(self) -> float:
        """The share of all CPUs that other programs used since ``start()`` (0…1)."""
        elapsed = time.monotonic() - self._started_at
        used: dict[str, float] = {}
        for pid, (name, seconds) in self._foreign().items():
            before = self._start.get(pid)
            if before is not None and before[0] == name:
                used[name] = used.get(name, 0.0) + max(0.0, seconds - before[1])
        capacity = elapsed * (os.cpu_count() or 1)
        self.share = sum(used.values()) / capacity if capacity else 0.0
        self.top = sorted(used.items(), key=lambda item: -item[1])[:3]
        return self.share


# === CPU OF THE PROCESSES UNDER TEST ===
def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants (uvicorn's workers)."""
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            total += _cpu_seconds(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total
