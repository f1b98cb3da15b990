"""
================================================================
FILE: idempotency.py
PATH: /libs/lkern-common/src/lkern_common/idempotency.py
DESCRIPTION: Idempotency keys for POSTs: stored responses, replay, migration helpers, expiry
VERSION: v1.1.0
UPDATED: 2026-12-02 06:35:00
================================================================

A client sends ``Idempotency-Key: <key>`` (IETF httpapi draft) on a POST that creates or
changes something; a retry with the same key gets the first answer again instead of a second
change. A route uses it like this (the same session as the change)::

    async def create_order(order: OrderCreate, service: ServiceDep, idempotency: IdempotencyDep):
        if (replayed := await idempotency.replay(order)) is not None:
            return replayed
        view = await service.create_order(order)
        return await idempotency.save(json_response(order_response(view), 201, view.version))

- :meth:`Idempotency.replay` takes a transaction-scoped advisory lock on (caller, route, key)
  with ``pg_try_advisory_xact_lock``: when another request holds it, that request is still
  running and this one is refused with 409. With the lock, it reads the stored answer: same
  body → the stored status, headers and body with ``Idempotent-Replayed: true``; another body →
  422. No stored answer → None, and the route does its work.
- :meth:`Idempotency.save` stores the response in the request's transaction, so it commits
  with the change or not at all. Only successful answers are stored: an error rolls the
  transaction back, nothing changed, and a retry runs again.
- A route that must do slow work before its transaction (orders asks contacts first, so that no
  pooled connection waits for that answer) takes :data:`IdempotencyRequestDep` instead: its
  :meth:`IdempotencyRequest.stored_answer` replays a finished request without a transaction
  (so a retry is answered even while the slow dependency is down), and
  :meth:`IdempotencyRequest.bind` gives the :class:`Idempotency` of the transaction it opens
  afterwards (``replay`` there is still the authoritative check, under the lock).
- Keys are scoped to the caller (:func:`caller_identity`) and the route (method and path), and
  expire after ``IDEMPOTENCY_KEY_TTL_SECONDS``; :class:`IdempotencyKeyCleaner` deletes expired
  rows in the service.

The table belongs to each service's database, created by the service's Alembic migration with
:func:`create_idempotency_table_v1` / :func:`drop_idempotency_table_v1`; the service imports
this module (``app/models/__init__.py``) so that ``alembic check`` agrees with it.
"""

# === IMPORTS ===
import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import sqlalchemy as sa
from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy import DateTime, Index, LargeBinary, SmallInteger, String, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from lkern_common.database import Base, Database, Query
from lkern_common.errors import BadRequestError, ConflictError, DomainError
from lkern_common.request_context import get_subject
from lkern_common.settings import ServiceSettings
from lkern_common.web.conditional import set_etag
from lkern_common.web.deps import SessionDep

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
IDEMPOTENCY_TABLE = "idempotency_keys"
EXPIRES_INDEX = "ix_idempotency_keys_expires_at"
TABLE_COMMENT = "Idempotency keys: the first answer of a POST, replayed to its retries"
KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# A request without a known subject (none reaches a protected route) is this caller.
ANONYMOUS_CALLER = "anonymous"
# Headers of a stored answer that are not replayed (recomputed for the replay).
_NOT_STORED_HEADERS = {"content-length"}
# Rows deleted per statement by the cleanup (short transactions, short locks).
PURGE_BATCH_SIZE = 5000

# OpenAPI: the answers an idempotent POST adds to a route's documented responses.
IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "A request with this Idempotency-Key is still being processed: retry"},
    422: {
        "description": "Invalid input, or this Idempotency-Key was used with a different body",
    },
}


# === MODEL ===
class IdempotencyKey(Base):
    """The first successful answer to a POST with an Idempotency-Key, until it expires."""

    __tablename__ = IDEMPOTENCY_TABLE
    __table_args__ = (Index(EXPIRES_INDEX, "expires_at"), {"comment": TABLE_COMMENT})

    caller: Mapped[str] = mapped_column(String(255), primary_key=True)
    route: Mapped[str] = mapped_column(String(1024), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    # SHA-256 of the request body (canonical JSON): a retry must send the same request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    headers: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


KEYS = cast(sa.Table, IdempotencyKey.__table__)
STORED_ANSWER = Query(
    sa.select(KEYS.c.fingerprint, KEYS.c.status_code, KEYS.c.headers, KEYS.c.body)
    .where(KEYS.c.caller == sa.bindparam("caller"))
    .where(KEYS.c.route == sa.bindparam("route"))
    .where(KEYS.c.key == sa.bindparam("key"))
    .where(KEYS.c.expires_at > func.now())
)


# === MIGRATION HELPERS ===
def create_idempotency_table_v1(op: Any) -> None:
    """Create ``idempotency_keys`` (version 1) from an Alembic migration's ``upgrade()``."""
    op.create_table(
        IDEMPOTENCY_TABLE,
        sa.Column("caller", sa.String(length=255), nullable=False),
        sa.Column("route", sa.String(length=1024), nullable=False),
        sa.Column("key", sa.String(length=MAX_KEY_LENGTH), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "route", "key", name=op.f("pk_idempotency_keys")),
        comment=TABLE_COMMENT,
    )
    op.create_index(EXPIRES_INDEX, IDEMPOTENCY_TABLE, ["expires_at"], unique=False)


def drop_idempotency_table_v1(op: Any) -> None:
    """Drop ``idempotency_keys`` (version 1) from an Alembic migration's ``downgrade()``."""
    op.drop_index(EXPIRES_INDEX, table_name=IDEMPOTENCY_TABLE)
    op.drop_table(IDEMPOTENCY_TABLE)


# === ERRORS ===
class InvalidIdempotencyKeyError(BadRequestError):
    """The Idempotency-Key header is empty, too long or not printable ASCII (400)."""


class IdempotencyKeyInUseError(ConflictError):
    """A request with this key is still being processed (409): the client retries later."""

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed: retry shortly"
        )


class IdempotencyKeyReusedError(DomainError):
    """The key was used before with a different request body (422)."""

    status_code = 422

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request body: "
            "use a new key for a new request"
        )


# === HELPERS ===
def caller_identity(request: Request) -> str:
    """
    Who is calling, as idempotency keys are scoped: keys of different callers never meet.
    The subject of the request's bearer token (set by the route's ``requires(...)``).
    """
    return get_subject() or ANONYMOUS_CALLER


def parse_key(value: str) -> str:
    """
    The key of an Idempotency-Key header: the draft's quoted string (``"abc"``) or the bare
    text, 1-255 printable ASCII characters.
    """
    key = value.strip()
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidIdempotencyKeyError(
            f"{KEY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def fingerprint(body: BaseModel) -> str:
    """SHA-256 of the validated body as canonical JSON (key order and spacing do not count)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_response(model: BaseModel, status_code: int, version: int) -> Response:
    """A JSON answer with the resource's ETag, serialised as FastAPI serialises a response model."""
    response = Response(
        content=model.model_dump_json(), status_code=status_code, media_type="application/json"
    )
    set_etag(response, version)
    return response


def _replayed(stored: Any, body_fingerprint: str, what: str) -> Response:
    """The stored answer with ``Idempotent-Replayed: true``; 422 when the body differs."""
    if stored.fingerprint != body_fingerprint:
        raise IdempotencyKeyReusedError()
    headers = stored.headers
    if isinstance(headers, str):  # read on the driver: JSON text
        headers = json.loads(headers)
    logger.info("Replayed the answer to %s", what)
    return Response(
        content=bytes(stored.body),
        status_code=stored.status_code,
        headers={**headers, REPLAYED_HEADER: "true"},
    )


# === STORE ===
class Idempotency:
    """The Idempotency-Key of one request (or none) and its stored answer, in its transaction."""

    def __init__(
        self, session: AsyncSession, *, caller: str, route: str, key: str | None, ttl: float
    ) -> None:
        self.session = session
        self.caller = caller
        self.route = route
        self.key = key
        self.ttl = ttl
        self._fingerprint = ""

    def _identity(self) -> sa.ColumnElement[bool]:
        return sa.and_(
            KEYS.c.caller == self.caller, KEYS.c.route == self.route, KEYS.c.key == self.key
        )

    async def replay(self, body: BaseModel) -> Response | None:
        """
        The stored answer to replay (same key, same body), or None when the route must do its
        work. 409 while another request with this key runs; 422 when the body differs.
        """
        if self.key is None:
            return None
        self._fingerprint = fingerprint(body)
        connection = await self.session.connection()
        # One lock per (caller, route, key), held until this transaction ends: the request that
        # holds it is the one running; the stored row commits before the lock is released.
        lock_name = "\x1f".join(("lkern-idempotency", self.caller, self.route, self.key))
        lock_id = func.hashtextextended(lock_name, 0)
        if not await connection.scalar(sa.select(func.pg_try_advisory_xact_lock(lock_id))):
            raise IdempotencyKeyInUseError()
        stored = (
            await connection.execute(
                sa.select(KEYS.c.fingerprint, KEYS.c.status_code, KEYS.c.headers, KEYS.c.body)
                .where(self._identity())
                .where(KEYS.c.expires_at > func.now())
            )
        ).first()
        if stored is None:
            return None
        return _replayed(stored, self._fingerprint, f"{self.key} for {self.caller} {self.route}")

    async def save(self, response: Response) -> Response:
        """Store ``response`` for this key in the request's transaction; returns it."""
        if self.key is None:
            return response
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in _NOT_STORED_HEADERS
        }
        values = {
            "fingerprint": self._fingerprint,
            "status_code": response.status_code,
            "headers": headers,
            "body": bytes(response.body),
            "created_at": func.now(),
            "expires_at": func.now() + timedelta(seconds=self.ttl),
        }
        statement = pg_insert(KEYS).values(
            caller=self.caller, route=self.route, key=self.key, **values
        )
        # An expired row of the same key that the cleanup has not deleted yet is replaced.
        statement = statement.on_conflict_do_update(index_elements=KEYS.primary_key, set_=values)
        connection = await self.session.connection()
        await connection.execute(statement)
        return response


@dataclass(frozen=True)
class IdempotencyRequest:
    """A request's Idempotency-Key (or none), before any transaction is open."""

    caller: str
    route: str
    key: str | None
    ttl: float

    async def stored_answer(self, db: Database, body: BaseModel) -> Response | None:
        """
        The stored answer of a finished request with this key and body (a short read, no
        transaction, no lock), or None; 422 when the key was used with another body. A request
        with this key still running is not seen here: the transaction's ``replay`` sees it.
        """
        if self.key is None:
            return None
        stored = await db.fetch_one(
            STORED_ANSWER, caller=self.caller, route=self.route, key=self.key
        )
        if stored is None:
            return None
        return _replayed(stored, fingerprint(body), f"{self.key} for {self.caller} {self.route}")

    def bind(self, session: AsyncSession) -> "Idempotency":
        """The key bound to ``session``'s transaction (``replay`` under the lock, ``save``)."""
        return Idempotency(
            session, caller=self.caller, route=self.route, key=self.key, ttl=self.ttl
        )


# === DEPENDENCIES ===
def install_idempotency(app: Any, settings: ServiceSettings) -> None:
    """Make the service's key lifetime known to the Idempotency dependency."""
    app.state.idempotency_ttl_seconds = settings.idempotency_key_ttl_seconds


async def get_idempotency_request(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Any unique string (a UUID): a retry with the same key and body gets "
            "the first answer again (header `Idempotent-Replayed: true`) instead of a second "
            "change; keys expire after IDEMPOTENCY_KEY_TTL_SECONDS (default 24 h)",
        ),
    ] = None,
) -> IdempotencyRequest:
    """The request's Idempotency-Key, not bound to a transaction yet."""
    return IdempotencyRequest(
        caller=caller_identity(request),
        route=f"{request.method} {request.url.path}",
        key=parse_key(idempotency_key) if idempotency_key is not None else None,
        ttl=request.app.state.idempotency_ttl_seconds,
    )


IdempotencyRequestDep = Annotated[IdempotencyRequest, Depends(get_idempotency_request)]


async def get_idempotency(idempotency: IdempotencyRequestDep, session: SessionDep) -> Idempotency:
    """The request's Idempotency-Key, bound to the request's transaction."""
    return idempotency.bind(session)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]


# === CLEANUP ===
async def purge_expired_keys(db: Database, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete expired keys in batches (one short transaction each); returns how many."""
    total = 0
    while True:
        expired = (
            sa.select(KEYS.c.caller, KEYS.c.route, KEYS.c.key)
            .where(KEYS.c.expires_at <= func.now())
            .limit(batch_size)
        )
        async with db.transaction() as session:
            result = await session.execute(
                sa.delete(KEYS)
                .where(sa.tuple_(KEYS.c.caller, KEYS.c.route, KEYS.c.key).in_(expired))
                .returning(KEYS.c.key)
            )
            deleted = len(result.all())
        total += deleted
        if deleted < batch_size:
            break
    if total:
        logger.info("Idempotency cleanup deleted %d expired keys", total)
    return total


class IdempotencyKeyCleaner:
    """Deletes expired idempotency keys every IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS."""

    def __init__(self, settings: ServiceSettings, db: Database) -> None:
        self._interval = settings.idempotency_cleanup_interval_seconds
        self._db = db
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.runs = 0  # completed rounds (tests wait on it)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="idempotency-cleanup")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await purge_expired_keys(self._db)
            except Exception as exc:  # the database may be away: try again next round
                logger.warning("Idempotency cleanup failed (will retry): %s", exc)
            self.runs += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
