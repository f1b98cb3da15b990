"""
================================================================
FILE: health.py
PATH: /libs/lkern-common/src/lkern_common/web/health.py
DESCRIPTION: Liveness (/health), readiness (/ready) and service info (/) endpoints
VERSION: v1.1.0
UPDATED: 2026-12-02 06:50:00
================================================================
"""

# === IMPORTS ===
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lkern_common.database import Database
from lkern_common.settings import ServiceSettings

# === CONSTANTS ===
READINESS_TIMEOUT_SECONDS = 2.0


# === TYPES ===
@dataclass
class CheckResult:
    """
    Outcome of one readiness check; ``details`` appear in the /ready body. ``degraded``: the
    service still serves (``ok``) but something needs attention (its ``details`` say why):
    /ready answers 200 with ``"status": "degraded"``.
    """

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    degraded: bool = False


ReadinessCheck = Callable[[], Awaitable[CheckResult]]


# === CHECKS ===
def database_check(db: Database) -> ReadinessCheck:
    """Readiness check: the database answers."""

    async def check() -> CheckResult:
        return CheckResult(ok=await db.ping())

    return check


def add_readiness_check(request_or_app: Any, name: str, check: ReadinessCheck) -> None:
    """Register a readiness check on an app (``app.state.readiness_checks``)."""
    state = request_or_app.state
    if not hasattr(state, "readiness_checks"):
        state.readiness_checks = {}
    state.readiness_checks[name] = check


async def _run_check(check: ReadinessCheck) -> CheckResult:
    try:
        return await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        return CheckResult(ok=False, details={"error": "timed out"})
    except Exception as exc:
        return CheckResult(ok=False, details={"error": str(exc)})


# === ROUTER ===
def health_router(settings: ServiceSettings) -> APIRouter:
    """The standard's /health and / endpoints plus /ready."""
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health_check() -> dict[str, str]:
        """Health check endpoint for container orchestration (process is alive)."""
        return {
            "status": "healthy",
            "service": settings.service_name,
            "version": settings.service_version,
        }

    @router.get("/ready", responses={503: {"description": "A dependency is not ready"}})
    async def readiness_check(request: Request) -> JSONResponse:
        """
        Ready to serve: 200 only when every dependency check passes, 503 otherwise. A check
        that passes but is degraded keeps the 200 and makes the status "degraded".
        """
        checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
        names = list(checks)
        results = await asyncio.gather(*(_run_check(checks[name]) for name in names))
        ready = bool(names) and all(result.ok for result in results)
        degraded = any(result.degraded for result in results)
        body = {
            "status": ("degraded" if degraded else "ready") if ready else "not ready",
            "service": settings.service_name,
            "checks": {
                name: {
                    "ok": result.ok,
                    **({"degraded": True} if result.degraded else {}),
                    **result.details,
                }
                for name, result in zip(names, results, strict=True)
            },
        }
        return JSONResponse(status_code=200 if ready else 503, content=body)

    @router.get("/")
    async def root() -> dict[str, str]:
        """Root endpoint with service info."""
        return {
            "service": settings.service_name,
            "version": settings.service_version,
            "docs": "/docs",
        }

    return router
