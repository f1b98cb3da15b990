"""
================================================================
FILE: memory.py
PATH: /bench/memory.py
DESCRIPTION: Samples the resident memory (RSS) and CPU of each service process during the run
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================
"""

# === IMPORTS ===
import threading
from dataclasses import dataclass, field

import psutil

# === CONSTANTS ===
SAMPLE_INTERVAL_S = 0.25
MIB = 1024 * 1024


# === SAMPLER ===
def _role(child: psutil.Process) -> str:
    """A uvicorn worker (multiprocessing spawn), or a helper (multiprocessing's tracker)."""
    try:
        return "worker" if "spawn_main" in " ".join(child.cmdline()) else "helper"
    except psutil.Error:
        return "helper"


@dataclass
class ProcessPeak:
    """The highest RSS seen of one process."""

    service: str
    pid: int
    role: str  # "main" (python -m app), "worker" (uvicorn worker) or "helper"
    peak_rss_mib: float = 0.0


@dataclass
class MemorySampler:
    """
    A thread that reads every service process's RSS every ``SAMPLE_INTERVAL_S`` seconds and
    keeps the peak per process. ``roots`` maps a service to the pid of its `python -m app`
    process; its children (uvicorn workers, when HTTP_WORKERS > 1) are found on every sample.
    """

    roots: dict[str, int]
    peaks: dict[int, ProcessPeak] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def sample(self) -> None:
        for service, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                processes = [(root, "main")] + [
                    (child, _role(child)) for child in root.children(recursive=True)
                ]
            except psutil.NoSuchProcess:
                continue
            for process, role in processes:
                try:
                    rss = process.memory_info().rss / MIB
                except psutil.NoSuchProcess:
                    continue
                peak = self.peaks.setdefault(process.pid, ProcessPeak(service, process.pid, role))
                peak.peak_rss_mib = max(peak.peak_rss_mib, rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.sample()

    def service_peaks(self) -> dict[str, list[ProcessPeak]]:
        """The peaks grouped by service."""
        grouped: dict[str, list[ProcessPeak]] = {}
        for peak in self.peaks.values():
            grouped.setdefault(peak.service, []).append(peak)
        return grouped
