"""
================================================================
FILE: deps.py
PATH: /libs/lkern-common/src/lkern_common/web/deps.py
DESCRIPTION: FastAPI dependencies: the request owns the database transaction
VERSION: v1.1.0
UPDATED: 2026-11-26 15:40:00
================================================================
"""

# === IMPORTS ===
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from lkern_common.database import Database


# === DEPENDENCIES ===
# Dependencies without I/O are ``async def`` too: FastAPI runs a plain ``def`` dependency in
# its thread pool, a thread hop per request for nothing.
async def get_database(request: Request) -> Database:
    """The process's Database, created by the app's lifespan."""
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """
    One session per request. The transaction commits when the route returns and rolls back
    when it raises; services only ``flush()``. Declared with ``scope="function"`` so the
    commit happens *before* the response is sent: a client never sees a 2xx for a change that
    did not commit.
    """
    db: Database = request.app.state.db
    async with db.transaction() as session:
        yield session


# === ALIASES ===
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
