"""
================================================================
FILE: process.py
PATH: /tools/lkern-devstack/src/lkern_devstack/process.py
DESCRIPTION: Runs a service as a child process: migrate, start, wait until ready, stop
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import httpx

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[4]
SERVICES_DIR = REPO_ROOT / "services"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1

LineSink = Callable[[str, str], None]


# === ERRORS ===
class ServiceProcessError(RuntimeError):
    """A service could not be migrated, started or made ready; the message says why."""


# === HELPERS ===
def die_with_parent() -> None:
    """In the child: receive SIGTERM if the parent dies, so no service outlives `lkern up`."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def default_sink(name: str, line: str) -> None:
    """Write a child's log line to our stdout, prefixed by the service name."""
    sys.stdout.write(f"{name:<18}| {line}\n")
    sys.stdout.flush()


# === SERVICE PROCESS ===
class ServiceProcess:
    """
    One service run the way production runs it: its own process, started from its own folder
    with ``python -m app``, configured only by environment variables.
    """

    def __init__(
        self,
        name: str,
        *,
        env: Mapping[str, str],
        http_port: int,
        service_dir: Path | None = None,
        sink: LineSink = default_sink,
    ) -> None:
        self.name = name
        self.service_dir = service_dir or SERVICES_DIR / name
        self.env = {**os.environ, **env, "HTTP_PORT": str(http_port), "PYTHONUNBUFFERED": "1"}
        self.http_port = http_port
        self.sink = sink
        self.process: subprocess.Popen[str] | None = None
        self._recent: deque[str] = deque(maxlen=40)
        self._reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- migrate ---
    def migrate(self) -> None:
        """Run the service's Alembic migrations to head (in a child process, as in production)."""
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=self.service_dir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,  # a Ctrl-C meant for `lkern` does not cut a migration short
        )
        for line in (result.stdout + result.stderr).splitlines():
            self.sink(f"{self.name}:migrate", line)
        if result.returncode != 0:
            raise ServiceProcessError(f"{self.name}: migrations failed (see the lines above)")

    # --- start / ready / stop ---
    def start(self) -> None:
        """Start ``python -m app`` in the service folder; its output goes to the sink."""
        self.kill_leftovers()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=self.service_dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the CLI only; it stops children in order
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        self._reader = threading.Thread(
            target=self._pump, args=(self.process.stdout,), name=f"{self.name}-log", daemon=True
        )
        self._reader.start()

    def _pump(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            self._recent.append(line)
            self.sink(self.name, line)

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll ``/ready`` until it answers 200; fail fast, with its last lines, if it exits."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise ServiceProcessError(
                        f"{self.name} exited with code {self.exit_code()} before it was ready:\n"
                        + "\n".join(self._recent)
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/ready").status_code == 200:
                        return
                time.sleep(0.2)
        raise ServiceProcessError(
            f"{self.name} was not ready on {self.base_url}/ready within {timeout:.0f} s:\n"
            + "\n".join(self._recent)
        )

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process else None

    def kill_leftovers(self) -> None:
        """
        SIGKILL what is left of an exited run's process group (its own session): HTTP workers
        whose supervisor was killed would keep the ports and serve stale code after a restart.
        """
        if self.process is None or self.process.poll() is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM (graceful: in-flight requests finish), then SIGKILL after ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
                self.process.kill()
                self.process.wait()
        self.kill_leftovers()
        if self._reader is not None:
            self._reader.join(timeout=2)
