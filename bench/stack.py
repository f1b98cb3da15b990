"""
================================================================
FILE: stack.py
PATH: /bench/stack.py
DESCRIPTION: The stack under test: `lkern up` started by the bench (own folder, free ports) or given
VERSION: v1.1.0
UPDATED: 2026-12-02 11:00:00
================================================================

The bench runs the real ``lkern up`` (what ``make up`` runs) as a child process, on a data folder
of its own under /tmp and on free ports, so that it never touches a developer's stack. Service
settings reach the services through the environment of ``lkern up`` (``--service-env``), e.g.
``HTTP_WORKERS=2``. Instead, ``--contacts-url`` etc. name a stack that already runs.
"""

# === IMPORTS ===
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil

from lkern_devstack.broker import free_port
from lkern_devstack.dev_keys import dev_auth

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[1]
LKERN = REPO_ROOT / ".venv" / "bin" / "lkern"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
PORT_NAMES = (
    "contacts_http_port",
    "contacts_grpc_port",
    "orders_http_port",
    "orders_grpc_port",
    "postgres_port",
    "kafka_port",
)
SERVICE_DIRS = {
    "contacts": REPO_ROOT / "services" / "lkms101-contacts",
    "orders": REPO_ROOT / "services" / "lkms102-orders",
}
# Environment variables that would point `lkern up` at another PostgreSQL or broker.
FOREIGN_ENV = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LKERN_DATA_DIR", "LKERN_DATABASE_URL")


# === TARGETS ===
@dataclass
class StackTargets:
    """Where the stack under test answers."""

    contacts_url: str
    orders_url: str
    contacts_grpc: str
    contacts_db: str  # asyncpg DSN (postgresql://…)
    orders_db: str
    pg_host: str
    pg_port: int
    # The stack's development PKI: gRPC load runs over mutual TLS as lkms102-orders.
    pki_dir: Path = REPO_ROOT / ".lkern" / "pki"
    # An all-scopes access token every REST request sends (the API needs one, as in production).
    token: str = ""

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _dsn_parts(dsn: str) -> tuple[str, int]:
    url = httpx.URL(dsn.replace("postgresql://", "http://", 1))
    return url.host or "127.0.0.1", url.port or 5432


def given_targets(
    contacts_url: str,
    orders_url: str,
    contacts_grpc: str,
    contacts_db: str,
    orders_db: str,
    token: str | None = None,
) -> StackTargets:
    """
    Targets of a stack that already runs (bench options ``--contacts-url`` …); without a
    ``token`` (``--token``) one is minted with the development key of the default data folder.
    """
    host, port = _dsn_parts(contacts_db)
    return StackTargets(
        contacts_url.rstrip("/"),
        orders_url.rstrip("/"),
        contacts_grpc,
        contacts_db,
        orders_db,
        host,
        port,
        token=token or dev_auth(REPO_ROOT / ".lkern").mint(subject="bench"),
    )


# === SERVICE PROCESSES ===
def service_processes(root_pids: dict[str, int]) -> dict[str, list[psutil.Process]]:
    """Each service's processes: the `python -m app` process and its children (workers)."""
    found: dict[str, list[psutil.Process]] = {}
    for name, pid in root_pids.items():
        try:
            root = psutil.Process(pid)
            found[name] = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            found[name] = []
    return found


def listening_pid(port: int) -> int | None:
    """The process that listens on TCP ``port`` on this machine (None when not found)."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            pid: int | None = connection.pid
            return pid
    return None


# === STACK STARTED BY THE BENCH ===
def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL when it has not ended within STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class BenchStack:
    """A `lkern up` child process on its own data folder and free ports."""

    service_env: dict[str, str] = field(default_factory=dict)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lkern-bench-")))
    log_path: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def __post_init__(self) -> None:
        # PostgreSQL runs as an unprivileged account when we are root: it must reach the folder.
        self.data_dir.chmod(0o755)
        if not self.ports:
            self.ports = {name: free_port() for name in PORT_NAMES}

    @property
    def targets(self) -> StackTargets:
        pg = self.ports["postgres_port"]
        return StackTargets(
            contacts_url=f"http://127.0.0.1:{self.ports['contacts_http_port']}",
            orders_url=f"http://127.0.0.1:{self.ports['orders_http_port']}",
            contacts_grpc=f"127.0.0.1:{self.ports['contacts_grpc_port']}",
            contacts_db=f"postgresql://postgres@127.0.0.1:{pg}/lkms101_contacts",
            orders_db=f"postgresql://postgres@127.0.0.1:{pg}/lkms102_orders",
            pg_host="127.0.0.1",
            pg_port=pg,
            pki_dir=self.data_dir / "pki",
            token=dev_auth(self.data_dir).mint(subject="bench"),
        )

    def start(self) -> float:
        """Run `lkern up` and wait until both services are ready; returns the seconds it took."""
        if not LKERN.is_file():
            raise RuntimeError(f"{LKERN} is missing: run `make venv` first")
        args = [str(LKERN), "up", "--data-dir", str(self.data_dir)]
        for name, port in self.ports.items():
            args += [f"--{name.replace('_', '-')}", str(port)]
        environment = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        environment.update(self.service_env)
        environment["COLUMNS"] = "200"
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            args,
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=self.data_dir,
        )
        self._wait_ready()
        return time.monotonic() - started

    def _wait_ready(self) -> None:
        targets = self.targets
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"lkern up exited with code {self.process.returncode} before the stack "
                        f"was ready (log: {self.log_path})"
                    )
                try:
                    if all(
                        client.get(f"{url}/ready").status_code == 200
                        for url in (targets.contacts_url, targets.orders_url)
                    ):
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"the stack was not ready within {READY_TIMEOUT_S:.0f} s")

    def service_pids(self) -> dict[str, int]:
        """The pid of each service's `python -m app` process."""
        assert self.process is not None
        pids: dict[str, int] = {}
        for child in psutil.Process(self.process.pid).children(recursive=False):
            try:
                cmdline = child.cmdline()
                cwd = Path(child.cwd())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if cmdline[-2:] != ["-m", "app"]:
                continue
            for name, folder in SERVICE_DIRS.items():
                if cwd == folder:
                    pids[name] = child.pid
        return pids

    def stop(self) -> None:
        """SIGTERM to `lkern up` (it stops everything in order); SIGKILL if it hangs."""
        if self.process is not None:
            terminate(self.process)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def remove(self) -> None:
        """Delete the data folder (PostgreSQL's cluster and the broker's log)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)


# === THE ANCHOR (bench/anchor.py) ===
@dataclass
class AnchorApp:
    """
    The bare FastAPI app of issue 18 (bench/anchor.py) under uvicorn with uvloop and httptools,
    ``workers`` processes, on a free port, reading the contacts database of the stack.
    """

    dsn: str
    workers: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            str(REPO_ROOT / ".venv" / "bin" / "python"),
            "-m",
            "uvicorn",
            "bench.anchor:app",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        environment = {**os.environ, "ANCHOR_DSN": self.dsn}
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the anchor app exited with {self.process.returncode}")
                try:
                    if client.get(f"{self.url}/api/v1/contacts/1").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("the anchor app did not answer in time")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None
