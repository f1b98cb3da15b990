"""
================================================================
FILE: test_testpostgres.py
PATH: /tools/lkern-devstack/tests/test_testpostgres.py
DESCRIPTION: The test run's PostgreSQL: lkern with-test-postgres and the per-process fallback
VERSION: v1.0.0
UPDATED: 2026-12-02 02:50:00
================================================================

Each test runs a real child process (the `lkern` command, or Python as pytest would) and checks
from outside what it leaves behind: after the command, however it ended, no server answers on
the port and its data folder is gone.
"""

# === IMPORTS ===
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import make_url

from lkern_devstack.testpostgres import ENV_VAR

# === CONSTANTS ===
pytestmark = pytest.mark.timeout(120)
LKERN = Path(sys.executable).parent / "lkern"
# Connects to TEST_POSTGRES_URL (or the fallback server), writes "<url> <data directory>" to
# the file named by argv[1], then sleeps when argv[2] is "sleep", else exits with code 3.
PROBE = """
import asyncio, os, sys, time
import asyncpg
from sqlalchemy import make_url
from lkern_devstack.testpostgres import get_test_postgres_url

url = get_test_postgres_url()
async def data_directory():
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SHOW data_directory")
    finally:
        await connection.close()
folder = asyncio.run(data_directory())
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{url} {folder} {os.getpid()}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "sleep":
    time.sleep(600)
sys.exit(3)
"""


# === HELPERS ===
def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    env.update(extra)
    return env


def probe_command(report: Path, then: str) -> list[str]:
    return [sys.executable, "-c", PROBE, str(report), then]


def wait_for_report(report: Path, process: subprocess.Popen[bytes]) -> tuple[str, Path, int]:
    """The probe's URL, the server's data folder and the probe's pid, once it has written them."""
    deadline = time.monotonic() + 90
    while not report.exists():
        assert process.poll() is None, f"exited early with {process.returncode}"
        assert time.monotonic() < deadline, "the probe did not report"
        time.sleep(0.2)
    url, folder, pid = report.read_text().split()
    return url, Path(folder), int(pid)


def answers(url: str) -> bool:
    """True when something accepts connections on the URL's port."""
    parsed = make_url(url)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((parsed.host or "127.0.0.1", parsed.port or 5432)) == 0


def assert_gone(url: str, folder: Path) -> None:
    assert not answers(url), f"a server still answers at {url}"
    assert not folder.exists(), f"{folder} was left behind"


# === lkern with-test-postgres ===
def test_command_gets_a_throwaway_server_that_is_gone_after_it(scratch_dir: Path) -> None:
    report = scratch_dir / "report"
    result = subprocess.run(
        [str(LKERN), "with-test-postgres", "--", *probe_command(report, "exit")],
        env=environment(),
        capture_output=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 3, result.stderr.decode()
    url, folder, _ = report.read_text().split()
    assert make_url(url).port not in (None, 5432)
    assert_gone(url, Path(folder))


def test_sigterm_reaches_the_command_and_the_server_is_still_stopped(scratch_dir: Path) -> None:
    report = scratch_dir / "report"
    wrapper = subprocess.Popen(
        [str(LKERN), "with-test-postgres", "--", *probe_command(report, "sleep")],
        env=environment(),
        stdout=subprocess.DEVNULL,
    )
    url, folder, probe_pid = wait_for_report(report, wrapper)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(60) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(probe_pid, 0)
    assert_gone(url, folder)


def test_a_given_url_is_passed_on_and_no_server_is_started() -> None:
    given = "postgresql+asyncpg://tester@127.0.0.1:1/postgres"
    result = subprocess.run(
        [str(LKERN), "with-test-postgres", "--", "sh", "-c", f'echo "${ENV_VAR}"'],
        env=environment(**{ENV_VAR: given}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == given


# === A TEST PROCESS ON ITS OWN ===
def test_a_process_without_the_variable_starts_and_stops_its_own(scratch_dir: Path) -> None:
    report = scratch_dir / "report"
    result = subprocess.run(
        probe_command(report, "exit"), env=environment(), timeout=110, check=False
    )
    assert result.returncode == 3
    url, folder, _ = report.read_text().split()
    assert_gone(url, Path(folder))


def test_sigterm_to_a_test_process_still_stops_its_server(scratch_dir: Path) -> None:
    report = scratch_dir / "report"
    process = subprocess.Popen(probe_command(report, "sleep"), env=environment())
    url, folder, _ = wait_for_report(report, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) != 0
    assert_gone(url, folder)
