"""
================================================================
FILE: serve.py
PATH: /libs/lkern-common/src/lkern_common/web/serve.py
DESCRIPTION: Runs a service's ASGI app with uvicorn from its settings (python -m app)
VERSION: v1.2.0
UPDATED: 2026-12-02 05:55:00
================================================================

HTTP_WORKERS (docs/performance.md): by default (0) one worker per CPU core the process may use
(``ServiceSettings.worker_processes``). With 1 one process serves REST and gRPC and runs the
outbox relay and the Kafka consumers. With N > 1 uvicorn's main process binds the HTTP
port and starts N worker processes, each running the whole app (its lifespan):

- REST: the workers share the HTTP socket; the kernel hands each new connection to one of them.
- gRPC: every worker runs a gRPC server on GRPC_PORT with SO_REUSEPORT; the kernel spreads new
  connections among them (a client's channel is one connection: it stays with one worker).
  The main process first checks that nothing else listens on GRPC_PORT, so a clash with another
  program still fails at start.
- Outbox relay: one per worker, but only the holder of the advisory lock publishes; the others
  are standbys that take over when it stops (one publisher, per-key order kept).
- Kafka consumers: every worker is a member of the service's consumer group; the partitions are
  split among them (the inbox keeps each event's effect exactly once across a rebalance).
- Metrics: every worker writes its figures to PROMETHEUS_MULTIPROC_DIR (prometheus-client's
  multiprocess mode); /metrics, answered by any worker, sums them (lkern_common.metrics).
  ``serve`` points the variable at a new folder of its own (removed at exit) unless the
  deployment set it, and empties it at start: counts begin at 0 with every start.
"""

# === IMPORTS ===
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn

from lkern_common.ports import port_is_free
from lkern_common.settings import ServiceSettings


# === HELPERS ===
def check_port_free(host: str, port: int, what: str) -> None:
    """Fail with a clear message when something listens on ``host:port`` already."""
    if not port_is_free(host, port):
        raise SystemExit(
            f"{what} port {port} on {host} is already in use by another process: "
            f"stop it or choose another port"
        )


# === METRICS FOLDER ===
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(service_name: str) -> Path | None:
    """
    Point PROMETHEUS_MULTIPROC_DIR at an empty folder before any worker starts (the workers
    inherit it). A folder the deployment chose is emptied of the last run's files; else a new
    temporary one is made, which the caller removes at exit (returned).
    prometheus-client chooses its mode when it is imported, so it must not be imported yet.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before serve(): the metrics would stay in one "
            "process (import the app only through serve's app path)"
        )
    configured = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    made = Path(tempfile.mkdtemp(prefix=f"{service_name}-metrics-"))
    os.environ[MULTIPROC_DIR_VARIABLE] = str(made)
    return made


# === SERVE ===
def serve(app_path: str, settings: ServiceSettings) -> None:
    """
    Serve ``app_path`` (``"app.main:app"``) on HTTP_HOST:HTTP_PORT with uvloop and httptools,
    in HTTP_WORKERS processes. Logging is configured by the app itself (standard format with
    request ids), so uvicorn's own log config is disabled. SIGTERM/SIGINT stop it gracefully:
    the lifespan closes the gRPC server, background tasks and the pool.
    """
    workers = settings.worker_processes
    if workers > 1 and settings.grpc_port:
        check_port_free(settings.grpc_host, settings.grpc_port, "The gRPC")
    made_metrics_dir = prepare_metrics_dir(settings.service_name)
    try:
        _run(app_path, settings, workers)
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


def _run(app_path: str, settings: ServiceSettings, workers: int) -> None:
    uvicorn.run(
        app_path,
        host=settings.http_host,
        port=settings.http_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.grpc_grace_seconds) + 5,
    )
