"""
================================================================
FILE: serve.py
PATH: /libs/lkern-common/src/lkern_common/web/serve.py
DESCRIPTION: Runs a service's ASGI app with uvicorn from its settings (python -m app)
VERSION: v1.1.0
UPDATED: 2026-11-26 18:00:00
================================================================

HTTP_WORKERS (docs/performance.md): with 1 (the default) one process serves REST and gRPC and
runs the outbox relay and the Kafka consumers. With N > 1 uvicorn's main process binds the HTTP
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
"""

# === IMPORTS ===
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


# === SERVE ===
def serve(app_path: str, settings: ServiceSettings) -> None:
    """
    Serve ``app_path`` (``"app.main:app"``) on HTTP_HOST:HTTP_PORT with uvloop and httptools,
    in HTTP_WORKERS processes. Logging is configured by the app itself (standard format with
    request ids), so uvicorn's own log config is disabled. SIGTERM/SIGINT stop it gracefully:
    the lifespan closes the gRPC server, background tasks and the pool.
    """
    if settings.http_workers > 1 and settings.grpc_port:
        check_port_free(settings.grpc_host, settings.grpc_port, "The gRPC")
    uvicorn.run(
        app_path,
        host=settings.http_host,
        port=settings.http_port,
        workers=settings.http_workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.grpc_grace_seconds) + 5,
    )
