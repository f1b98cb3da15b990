"""
================================================================
FILE: serve.py
PATH: /libs/lkern-common/src/lkern_common/web/serve.py
DESCRIPTION: Runs a service's ASGI app with uvicorn from its settings (python -m app)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import uvicorn

from lkern_common.settings import ServiceSettings


# === SERVE ===
def serve(app_path: str, settings: ServiceSettings) -> None:
    """
    Serve ``app_path`` (``"app.main:app"``) on HTTP_HOST:HTTP_PORT with uvloop and httptools.
    Logging is configured by the app itself (standard format with request ids), so uvicorn's
    own log config is disabled. SIGTERM/SIGINT stop it gracefully: the lifespan closes the gRPC
    server, background tasks and the pool.
    """
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
