"""
================================================================
FILE: conftest.py
PATH: /tests/e2e/conftest.py
DESCRIPTION: End-to-end fixtures: the real lkern up in a temporary folder on free ports
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from lkern_common.registry import discover_services
from lkern_devstack.broker import free_port
from lkern_devstack.dev_keys import dev_auth

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[2]
LKERN = REPO_ROOT / ".venv" / "bin" / "lkern"
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
READY_TIMEOUT_SECONDS = 120


# === PAUSING A PROCESS ===
def _all_threads_stopped(process: psutil.Process) -> bool:
    return all(
        psutil.Process(thread.id).status() == psutil.STATUS_STOPPED for thread in process.threads()
    )


@contextmanager
def paused(process: psutil.Process, timeout: float = 10.0) -> Iterator[None]:
    """
    SIGSTOP ``process`` and its children (a service's HTTP workers), so connections stay open
    and nothing is answered; SIGCONT at the end.
    """
    frozen = [process, *process.children(recursive=True)]
    for each in frozen:
        os.kill(each.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout
        while not all(_all_threads_stopped(each) for each in frozen):
            assert time.monotonic() < deadline, f"pid {process.pid} did not stop"
            time.sleep(0.001)
        yield
    finally:
        for each in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each.pid, signal.SIGCONT)


# === STACK ===
@dataclass
class RunningStack:
    """A `lkern up` process, its ports and everything it printed."""

    process: subprocess.Popen[str]
    data_dir: Path
    ports: dict[str, int]
    output: list[str] = field(default_factory=list)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{service}_http_port']}"

    def text(self) -> str:
        return "\n".join(self.output)

    def token(self, **options: Any) -> str:
        """An access token of this stack's development issuer (every scope unless ``scopes``)."""
        return dev_auth(self.data_dir).mint(subject="e2e", **options)

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client that sends an all-scopes token of this stack."""
        return httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {self.token()}"})

    def descendants(self) -> list[psutil.Process]:
        """Every process of the stack: children of lkern and the servers it daemonised."""
        found: dict[int, psutil.Process] = {}
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                found[child.pid] = child
        except psutil.NoSuchProcess:
            pass
        for candidate in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(candidate.info["cmdline"] or [])
            if str(self.data_dir) in cmdline:
                found[candidate.pid] = candidate
        return list(found.values())


def _stack_environment(checkout: Path | None = None) -> dict[str, str]:
    environment = dict(os.environ)
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LKERN_DATA_DIR", "PYTHONPATH"):
        environment.pop(name, None)
    if checkout is not None:
        # That checkout's own code (lkern and the library; its services run from its folder)
        # with this environment's installed dependencies.
        sources = [checkout / "tools/lkern-devstack/src", checkout / "libs/lkern-common/src"]
        environment["PYTHONPATH"] = os.pathsep.join(str(path) for path in sources)
    return environment


def start_stack(
    data_dir: Path | None = None, *, checkout: Path | None = None, **port_overrides: int
) -> RunningStack:
    """
    Run `lkern up` with free ports and a new (or the given) data folder; return at once.
    With ``checkout``: the `lkern up` of that copy of the repository, run from its folder with
    its default data folder (``<checkout>/.lkern``), as `make up` there would.
    """
    if checkout is not None:
        data_dir = checkout / ".lkern"
    elif data_dir is None:
        # PostgreSQL runs as an unprivileged user when we are root: the folder must be reachable.
        data_dir = Path(tempfile.mkdtemp(prefix="lkern-e2e-"))
        data_dir.chmod(0o755)
    # Free ports for every service of that checkout's registry (a generated one too).
    services = discover_services(checkout or REPO_ROOT)
    names = (
        *(f"{entry.short_name}_{kind}_port" for entry in services for kind in ("http", "grpc")),
        "postgres_port",
        "kafka_port",
    )
    ports = {name: port_overrides.get(name) or free_port() for name in names}
    if checkout is None:
        args = [str(LKERN), "up", "--data-dir", str(data_dir)]
    else:
        args = [str(PYTHON), "-m", "lkern_devstack.cli", "up"]
    for name, port in ports.items():
        args += [f"--{name.replace('_', '-')}", str(port)]
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_stack_environment(checkout),
        cwd=checkout or data_dir,
    )
    stack = RunningStack(process, data_dir, ports)
    assert process.stdout is not None
    stdout = process.stdout

    def collect() -> None:
        for line in stdout:
            stack.output.append(line.rstrip("\n"))

    threading.Thread(target=collect, daemon=True).start()
    return stack


def wait_until_ready(stack: RunningStack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            assert stack.process.poll() is None, f"lkern up exited early:\n{stack.text()}"
            try:
                if all(
                    client.get(f"{stack.url(name)}/ready").status_code == 200
                    for name in ("contacts", "orders")
                ) and any("Press Ctrl-C" in line for line in stack.output):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise AssertionError(f"the stack was not ready in time:\n{stack.text()}")


def stop_stack(stack: RunningStack) -> None:
    if stack.process.poll() is None:
        stack.process.terminate()
        try:
            stack.process.wait(60)
        except subprocess.TimeoutExpired:
            stack.process.kill()
    for leftover in stack.descendants():
        leftover.kill()
    shutil.rmtree(stack.data_dir, ignore_errors=True)


@contextmanager
def ready_stack(**service_env: str) -> Iterator[RunningStack]:
    """
    `lkern up` started (``service_env``: settings it passes on to both services, e.g.
    ``HTTP_WORKERS="2"``), ready; stopped at the end of the block.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in service_env.items():
            patch.setenv(name, value)
        running = start_stack()
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop_stack(running)


@pytest.fixture(scope="module")
def stack() -> Iterator[RunningStack]:
    """The whole system started by the real `lkern up`, shared by one test module."""
    with ready_stack() as running:
        yield running
