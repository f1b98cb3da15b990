"""
================================================================
FILE: exposition.py
PATH: /libs/lkern-common/src/lkern_common/metrics/exposition.py
DESCRIPTION: GET /metrics: every worker's figures in the Prometheus text format, in one scrape
VERSION: v1.0.0
UPDATED: 2026-12-02 06:15:00
================================================================

``GET /metrics`` on the REST port (public like /health and /ready: docs/observability.md says
why, and how a deployment keeps it inside its network).

With ``PROMETHEUS_MULTIPROC_DIR`` set (always when the service runs with ``python -m app``:
lkern_common.web.serve sets it), the worker that answers reads every worker's files there
(prometheus-client's ``MultiProcessCollector``): counters and histograms are summed over all
workers, those of workers that have ended included; gauges combine as each one declares.
Before answering it

- runs the app's metrics refreshers (figures read at scrape time, e.g. the outbox backlog:
  ``add_metrics_refresher``), each bounded by a timeout;
- forgets the "live" gauges of workers that are gone (a worker that was killed cannot do it
  itself), so connections in use or a lag it last reported do not linger.

Process metrics (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, open file
descriptors, start time) are read from /proc for every live worker, with a ``pid`` label:
prometheus-client's own process collector, run once per worker process.

Without the variable (an app built in a test process) the process's default registry answers.
"""

# === IMPORTS ===
import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from lkern_common.metrics.buffer import flush_all

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_TIMEOUT_SECONDS = 2.0
# A worker's files: counter_<pid>.db, histogram_<pid>.db, gauge_<mode>_<pid>.db.
_PID_OF_FILE = re.compile(r"_(\d+)\.db$")

# === TYPES ===
MetricsRefresher = Callable[[], Awaitable[None]]


# === REFRESHERS ===
def add_metrics_refresher(app: Any, refresher: MetricsRefresher) -> None:
    """Run ``refresher`` before each scrape of /metrics (``app.state.metrics_refreshers``)."""
    state = app.state
    if not hasattr(state, "metrics_refreshers"):
        state.metrics_refreshers = []
    state.metrics_refreshers.append(refresher)


async def _refresh(refreshers: Iterable[MetricsRefresher]) -> None:
    """Run every refresher; one that fails or is slow leaves its gauges as they were."""
    for refresher in refreshers:
        try:
            await asyncio.wait_for(refresher(), REFRESH_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.warning("A metrics refresher failed (its figures are stale): %s", exc)


# === WORKERS ===
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_pids(directory: Path) -> list[int]:
    """The pids of the workers that wrote figures to ``directory`` and still run."""
    pids = set()
    for path in directory.glob("*.db"):
        match = _PID_OF_FILE.search(path.name)
        if match:
            pids.add(int(match.group(1)))
    return sorted(pid for pid in pids if _alive(pid))


def forget_dead_workers(directory: Path) -> None:
    """Remove the live gauges of workers that are gone (their counters stay)."""
    for path in directory.glob("gauge_live*_*.db"):
        match = _PID_OF_FILE.search(path.name)
        if match and not _alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), str(directory))  # type: ignore[no-untyped-call]


def _pid_of(pid: int) -> Callable[[], int]:
    return lambda: pid


class WorkerProcessCollector(Collector):
    """prometheus-client's process metrics of every live worker, labelled with its pid."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in worker_pids(self._directory):
            collector = ProcessCollector(pid=_pid_of(pid), registry=None)
            for family in collector.collect():
                target = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


# === EXPOSITION ===
def render_metrics() -> bytes:
    """Every figure in the Prometheus text format (all workers' in multiprocess mode)."""
    flush_all()  # this worker's tallies; the others' are at most a second old
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY)
    path = Path(directory)
    forget_dead_workers(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(WorkerProcessCollector(path))
    return generate_latest(registry)


def metrics_router() -> APIRouter:
    """``GET /metrics``."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The metrics"}},
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of every worker of this service (text format 0.0.4)."""
        await _refresh(getattr(request.app.state, "metrics_refreshers", ()))
        return Response(content=render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router
