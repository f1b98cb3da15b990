"""
================================================================
FILE: testing.py
PATH: /tools/lkern-devstack/src/lkern_devstack/testing.py
DESCRIPTION: Test support of every service's tests: database, broker, tokens, dev PKI, TLS channels
VERSION: v1.5.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import asyncio
import atexit
import contextlib
import functools
import inspect
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg
import grpc
import grpc.aio
from aiokafka import AIOKafkaConsumer
from sqlalchemy import event as sa_event
from sqlalchemy import make_url
from sqlalchemy import text as sa_text

from lkern_common.auth import ALL_SCOPES
from lkern_common.database import Database
from lkern_common.migrations import drop_database, ensure_database, upgrade_to_head
from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.dev_keys import SigningKey, write_jwks
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.stack import SERVICES
from lkern_devstack.testpostgres import get_test_postgres_url

# === CONSTANTS ===
TEST_ISSUER = "https://issuer.test/lkern"
TEST_AUDIENCE = "lkern-api"
TEST_SUBJECT = "test-user"


# === TEST DATABASE ===
class TestDatabase:
    """
    A database of its own for one test run: created with a unique name, migrated with the
    service's Alembic migrations (never ``create_all``), emptied between tests, dropped at the end.
    It lives on the test run's server (``TEST_POSTGRES_URL``, else a throw-away embedded
    PostgreSQL: see :mod:`lkern_devstack.testpostgres`).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, service_dir: Path, prefix: str) -> None:
        self.service_dir = service_dir
        name = f"test_{prefix}_{uuid.uuid4().hex[:10]}"
        server = make_url(get_test_postgres_url())
        self.url = server.set(database=name).render_as_string(hide_password=False)

    def create(self, migrate: bool = True) -> str:
        """Create (and migrate) the database; returns its URL. Call outside an event loop."""
        asyncio.run(ensure_database(self.url))
        if migrate:
            upgrade_to_head(self.service_dir, self.url)
        return self.url

    def drop(self) -> None:
        """Drop the database."""
        asyncio.run(drop_database(self.url))

    def public_schema(self) -> tuple[set[str], set[str]]:
        """Names of the tables and of the sequences in the ``public`` schema (migration tests)."""

        async def fetch() -> tuple[set[str], set[str]]:
            connection = await asyncpg.connect(self._dsn())
            try:
                tables = await connection.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
                sequences = await connection.fetch(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                )
                return {r["tablename"] for r in tables}, {r["sequencename"] for r in sequences}
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def _dsn(self) -> str:
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def truncate(self, *tables: str) -> None:
        """Empty ``tables`` and restart their id sequences."""
        connection = await asyncpg.connect(self._dsn())
        try:
            await connection.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()


# === ACCESS TOKENS ===
class TestTokens:
    """
    A test run's token issuer: a signing key, its JWKS file in ``directory`` and access tokens
    signed with it. Every service's conftest makes one per session and gives its settings to
    the app (``Settings(**tokens.settings(), ...)``); the ``client`` fixture sends
    ``tokens.bearer()`` (every scope) on every request::

        response = await client.get(url, headers=tokens.bearer(CONTACTS_READ, subject="bob"))
        token = tokens.mint(scopes=[...], subject="...", ttl_seconds=60, kid=..., nbf=...)

    ``rotate()`` puts a new key in the JWKS (the old one stays unless ``keep_old=False``) and
    signs with it from then on.
    """

    __test__ = False

    def __init__(
        self, directory: Path, *, issuer: str = TEST_ISSUER, audience: str = TEST_AUDIENCE
    ) -> None:
        self.jwks_file = directory / "jwks.json"
        self.issuer = issuer
        self.audience = audience
        self.keys = [SigningKey.generate()]
        write_jwks(self.jwks_file, self.keys)

    @classmethod
    def temporary(cls) -> "TestTokens":
        """An issuer whose JWKS file is in a new temporary folder, removed when the run ends."""
        directory = Path(tempfile.mkdtemp(prefix="lkern-test-tokens-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        return cls(directory)

    @property
    def key(self) -> SigningKey:
        """The key tokens are signed with now."""
        return self.keys[-1]

    def settings(self) -> dict[str, Any]:
        """Service settings that trust this issuer (AUTH_* as Settings keyword arguments)."""
        return {
            "auth_issuer": self.issuer,
            "auth_audience": self.audience,
            "auth_jwks_file": str(self.jwks_file),
            "auth_jwks_url": "",
        }

    def mint(
        self,
        scopes: Iterable[str] = ALL_SCOPES,
        *,
        subject: str = TEST_SUBJECT,
        ttl_seconds: float = 3600,
        kid: str | None = None,
        key: SigningKey | None = None,
        **claims: Any,
    ) -> str:
        """A token of this issuer; ``claims`` add or override any claim (iss, aud, nbf…)."""
        signer = key or self.key
        if kid is not None:
            signer = SigningKey(kid, signer.private_key)
        options: dict[str, Any] = {"issuer": self.issuer, "audience": self.audience}
        for name, option in (("iss", "issuer"), ("aud", "audience")):
            if name in claims:
                options[option] = claims.pop(name)
        return signer.mint(
            subject=subject, scopes=scopes, ttl_seconds=ttl_seconds, **options, **claims
        )

    def bearer(self, *scopes: str, subject: str = TEST_SUBJECT) -> dict[str, str]:
        """``{"Authorization": "Bearer …"}`` with ``scopes`` (every scope when none given)."""
        token = self.mint(scopes or ALL_SCOPES, subject=subject)
        return {"Authorization": f"Bearer {token}"}

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        """A new signing key in the JWKS file; returns it."""
        new = SigningKey.generate()
        self.keys = [*self.keys, new] if keep_old else [new]
        write_jwks(self.jwks_file, self.keys)
        return new


class JwksServer:
    """
    A real HTTP server on 127.0.0.1 (a free port) serving a JWKS the test can replace, as an
    identity provider's ``jwks_uri``: point AUTH_JWKS_URL at ``server.url``::

        with JwksServer(tokens.keys) as server:
            settings = Settings(**tokens.settings(), auth_jwks_url=server.url)
            server.publish([*tokens.keys, new_key])   # the issuer rotates a key in

    ``requests`` counts the fetches.
    """

    __test__ = False

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.document = b""
        self.requests = 0
        self.publish(keys)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.document)))
                self.end_headers()
                self.wfile.write(server.document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def publish(self, keys: Iterable[SigningKey]) -> None:
        """Serve these keys from now on."""
        self.document = json.dumps({"keys": [key.public_jwk() for key in keys]}).encode()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# === STATEMENTS SENT ===
@contextlib.asynccontextmanager
async def recorded_queries(db: Database) -> AsyncIterator[list[str]]:
    """
    The SQL text of the statements ``db`` sends through asyncpg's query API while the block
    runs: every statement of the driver pool (``Database.fetch_row`` / ``fetch_rows`` /
    ``fetch_one`` / ``fetch_all``), and on SQLAlchemy's pool the simple statements of
    transactions (BEGIN, COMMIT) and asyncpg's own catalog queries (made once per connection);
    statements SQLAlchemy runs as prepared statements are not included. For tests that count
    the queries of a use case.
    """
    queries: list[str] = []
    logged: list[Any] = []

    def log(query: Any) -> None:
        queries.append(query.query)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if not any(driver is known for known in logged):
            driver.add_query_logger(log)
            logged.append(driver)

    sa_event.listen(db.engine.sync_engine, "checkout", on_checkout)
    db.add_query_logger(log)
    try:
        yield queries
    finally:
        db.remove_query_logger(log)
        sa_event.remove(db.engine.sync_engine, "checkout", on_checkout)
        for driver in logged:
            driver.remove_query_logger(log)


# === WAITING ===
async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = 30.0
) -> None:
    """Wait until ``condition()`` holds (polled, up to ``timeout_s``); fail naming ``what``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def eventually_blocking(
    condition: Callable[[], bool], what: str, timeout_s: float = 30.0, interval_s: float = 0.1
) -> None:
    """
    :func:`eventually` for synchronous tests (e.g. tests/e2e, which drive processes from the
    test thread): poll ``condition()`` until it holds, up to ``timeout_s``; fail naming ``what``.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(interval_s)


# === LOCK WAITS ===
async def wait_for_lock_waiters(db: Database, count: int, timeout_s: float = 30.0) -> None:
    """
    Wait until ``count`` sessions of ``db``'s database wait on a lock (``pg_stat_activity``):
    a test that holds a lock knows its concurrent requests have all reached it.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with db.engine.connect() as connection:
        while True:
            waiting = await connection.scalar(
                sa_text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            await connection.rollback()  # each poll sees the current activity
            if waiting is not None and waiting >= count:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{count} sessions waiting on a lock wanted, {waiting} found")
            await asyncio.sleep(0.02)


# === DEVELOPMENT PKI ===
# A client certificate with no scopes anywhere (tests: "a service the server does not know").
TEST_CLIENT = "lkern-test-client"


def make_dev_pki(directory: Path, *names: str) -> DevPki:
    """
    A development CA in ``directory`` with a certificate and an event signing key for every
    service of the stack, the test client ``TEST_CLIENT``, and ``names``. A session fixture::

        @pytest.fixture(scope="session")
        def dev_pki(tmp_path_factory):
            return make_dev_pki(tmp_path_factory.mktemp("pki"))

    Point a service at it with ``Settings(**dev_pki.grpc_tls_settings(name),
    **dev_pki.event_settings(name, trusted))`` or, for a process, ``dev_pki.service_env(...)``.
    """
    return DevPki(directory).ensure([*(s.name for s in SERVICES), TEST_CLIENT, *names])


@functools.cache
def shared_dev_pki() -> DevPki:
    """
    One development PKI per test process (``make_dev_pki`` in a temporary folder removed at
    exit), for helpers that are not fixtures. ``TEST_CLIENT``'s event key signs test events.
    """
    directory = Path(tempfile.mkdtemp(prefix="lkern-test-pki-"))
    atexit.register(shutil.rmtree, directory, True)
    return make_dev_pki(directory)


def tls_channel(
    pki: DevPki, target: str, identity: str, *, options: Iterable[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio gRPC channel to ``target`` over mutual TLS, as ``identity`` (its cert)."""
    credentials = pki.tls_files(identity).channel_credentials()
    return grpc.aio.secure_channel(target, credentials, options=list(options))


# === TEST BROKER ===
@contextmanager
def running_broker(log_file: Path | None = None) -> Iterator[LocalBroker]:
    """
    A local Kafka-protocol broker (Tansu, memory storage) on a free port for a test session.
    Every service's conftest wraps it in a session fixture::

        @pytest.fixture(scope="session")
        def kafka_broker(tmp_path_factory):
            with running_broker(tmp_path_factory.mktemp("kafka") / "tansu.log") as broker:
                yield broker

    Simulate an outage with ``broker.pause()`` / ``broker.resume()``, never a restart (a restart
    wipes every topic).
    """
    with LocalBroker(port=free_port(), log_file=log_file) as broker:
        yield broker


# === EVENT COLLECTOR ===
@dataclass(frozen=True)
class CollectedEvent:
    """One Kafka message as a test sees it: where it was, its key, JSON value and headers."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    headers: dict[str, str]
    raw: bytes = b""  # the value's bytes, as published (what its signature covers)

    @property
    def event_id(self) -> str:
        """The event's ``event_id`` (empty when the value has none)."""
        return str(self.value.get("event_id", ""))


class EventCollector:
    """
    Reads JSON events from ``topics`` in the background, from the earliest offset, with a
    consumer group of its own (a unique id), and keeps them in arrival order (per partition
    that is log order). Tests count what they got by ``event_id``, never with end offsets
    (Tansu's high watermark is wrong after multi-record batches)::

        async with EventCollector(broker.bootstrap_servers, topics) as collector:
            events = await collector.wait_for(lambda got: len(got) >= 3)
    """

    __test__ = False

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Iterable[str],
        *,
        group_id: str | None = None,
        session_timeout_ms: int = 6000,
    ) -> None:
        self.topics = list(topics)
        self.events: list[CollectedEvent] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Tansu does not wake a waiting fetch when data arrives: keep fetch waits short.
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id or f"test-collector-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 6),
            fetch_max_wait_ms=100,
        )

    async def start(self, within: float = 30.0) -> None:
        """Join the group and wait until partitions are assigned; then collect."""
        await self._consumer.start()
        deadline = asyncio.get_running_loop().time() + within
        while not self._consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                await self._consumer.stop()
                raise TimeoutError(f"no partitions of {self.topics} assigned in {within} s")
            await asyncio.sleep(0.05)
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        """Stop collecting and leave the group."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._consumer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self.events.append(
                        CollectedEvent(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            key=None if record.key is None else record.key.decode(),
                            value=json.loads(record.value) if record.value else {},
                            headers={name: value.decode() for name, value in record.headers},
                            raw=record.value or b"",
                        )
                    )
            if batches:
                self._changed.set()

    async def wait_for(
        self, condition: Callable[[list[CollectedEvent]], bool], within: float = 30.0
    ) -> list[CollectedEvent]:
        """Wait until ``condition(events)`` holds; returns the events (TimeoutError otherwise)."""
        deadline = asyncio.get_running_loop().time() + within
        while not condition(self.events):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"condition not met within {within} s ({len(self.events)} events collected)"
                )
            if self._task is not None and self._task.done():
                self._task.result()  # the collector died: raise its error
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return list(self.events)

    def by_event_id(self) -> dict[str, list[CollectedEvent]]:
        """The collected events grouped by ``event_id`` (more than one = a redelivery)."""
        grouped: dict[str, list[CollectedEvent]] = {}
        for event in self.events:
            grouped.setdefault(event.event_id, []).append(event)
        return grouped

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
