"""
================================================================
FILE: log_level.py
PATH: /libs/lkern-common/src/lkern_common/web/log_level.py
DESCRIPTION: GET/PUT /config/log-level: the service's log level at runtime (admin scope)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:30:00
================================================================

The company standard's runtime log-level API, on every service (the app factory adds it):

- ``GET /config/log-level``: the level of the worker that answers, the valid levels, the
  level stored with PUT (null: LOG_LEVEL from configuration applies) and the worker's pid;
- ``PUT /config/log-level`` ``{"level": "debug"}``: applied at once in the answering worker,
  stored in the service's database so every other worker applies it within
  LOG_LEVEL_POLL_SECONDS and a restart keeps it (lkern_common.runtime_config). A level that is
  not one of ``debug, info, warning, error, critical`` is a 422.

Both need the ``lkern:admin`` scope (401 without a token, 403 without the scope).
"""

# === IMPORTS ===
import os
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator

from lkern_common.auth import LKERN_ADMIN
from lkern_common.database import Database
from lkern_common.logging_setup import LOG_LEVELS, current_log_level
from lkern_common.request_context import get_subject
from lkern_common.runtime_config import apply_log_level, store_log_level, stored_log_level
from lkern_common.web.inputs import InputModel
from lkern_common.web.routing import ApiRoute
from lkern_common.web.security import requires

# === TYPES ===
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


# === SCHEMAS ===
class LogLevelChange(InputModel):
    """The new level (any case: "DEBUG" is "debug")."""

    level: LogLevel = Field(description=f"One of {', '.join(LOG_LEVELS)}")

    @field_validator("level", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class LogLevelState(BaseModel):
    """The log level of the worker that answered, and what is stored for every worker."""

    level: LogLevel = Field(description="The level of the worker process that answered")
    levels: list[str] = Field(description="The valid levels")
    stored: LogLevel | None = Field(
        description="The level set with PUT, kept for every worker and across restarts; null: "
        "none was set, LOG_LEVEL from configuration applies"
    )
    worker: int = Field(description="Process id of the worker that answered")


# === ROUTER ===
router = APIRouter(prefix="/config", tags=["configuration"], route_class=ApiRoute)


def _database(request: Request) -> Database | None:
    """The service's database (``app.state.db``); None in an app without one (tests)."""
    db: Database | None = getattr(request.app.state, "db", None)
    return db


async def _state(db: Database | None) -> LogLevelState:
    return LogLevelState(
        level=current_log_level(),
        levels=list(LOG_LEVELS),
        stored=None if db is None else await stored_log_level(db),
        worker=os.getpid(),
    )


@router.get("/log-level", dependencies=[requires(LKERN_ADMIN)])
async def get_log_level(request: Request) -> LogLevelState:
    """The service's log level (this worker's), the valid levels and the stored level."""
    return await _state(_database(request))


@router.put("/log-level", dependencies=[requires(LKERN_ADMIN)])
async def put_log_level(change: LogLevelChange, request: Request) -> LogLevelState:
    """Set the service's log level now, in every worker, and keep it across restarts."""
    db = _database(request)
    if db is not None:
        await store_log_level(db, change.level, get_subject())
    apply_log_level(change.level, f"set with PUT /config/log-level by {get_subject()}")
    return await _state(db)
