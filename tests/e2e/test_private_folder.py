"""
================================================================
FILE: test_private_folder.py
PATH: /tests/e2e/test_private_folder.py
DESCRIPTION: End-to-end: `lkern up` from a copy of the repository in a private (0700) folder
VERSION: v1.0.0
UPDATED: 2026-12-02 03:05:00
================================================================

As root (CI, containers, a fresh server) a clone under /root is in a folder only root can enter,
and PostgreSQL refuses to run as root: the stack must still start there, without asking anyone
to chmod anything. As an ordinary user the same test checks the plain case.
"""

# === IMPORTS ===
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lkern_devstack.postgres import RELOCATED_ROOT, EmbeddedPostgres
from tests.e2e.conftest import REPO_ROOT, start_stack, stop_stack, wait_until_ready


# === HELPERS ===
def copy_of_repository(target: Path) -> None:
    """The files a clone of this repository has (tracked and new, not ignored), as on disk now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # not a file deleted since it was staged
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def servers_of(folder: Path) -> list[psutil.Process]:
    """PostgreSQL servers whose command line names ``folder``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(folder) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture
def private_checkout() -> Iterator[Path]:
    """A copy of the repository in a folder only its owner can enter (mkdtemp makes it 0700)."""
    private = Path(tempfile.mkdtemp(prefix="lkern-private-"))
    checkout = private / "l-kern"
    copy_of_repository(checkout)
    relocated = EmbeddedPostgres(checkout / ".lkern" / "postgres").relocated_base()
    try:
        yield checkout
    finally:
        for leftover in servers_of(relocated):
            leftover.kill()
        shutil.rmtree(relocated, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


# === TESTS ===
def test_up_from_a_private_folder_runs_and_stops_cleanly(private_checkout: Path) -> None:
    private = private_checkout.parent
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    stack = start_stack(checkout=private_checkout)
    postgres = EmbeddedPostgres(stack.data_dir / "postgres")
    try:
        wait_until_ready(stack)  # both services' /ready answer 200
        assert postgres.is_running()
        if os.geteuid() == 0:
            # The server runs as an unprivileged account, its cluster where that account reaches.
            assert postgres.data_dir.is_symlink()
            assert postgres.cluster_dir.is_relative_to(RELOCATED_ROOT)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nothing was chmodded

        stack.process.terminate()
        assert stack.process.wait(60) == 0, stack.text()
        assert not postgres.is_running()
        assert not servers_of(postgres.cluster_dir)
    finally:
        stop_stack(stack)
