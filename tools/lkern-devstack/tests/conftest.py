"""
================================================================
FILE: conftest.py
PATH: /tools/lkern-devstack/tests/conftest.py
DESCRIPTION: Fixtures for the local-stack launcher tests: a scratch folder the server can reach
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


# === FIXTURES ===
@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    """
    A fresh folder under the system temp folder, searchable by every user.

    Not pytest's ``tmp_path``: as root that lies under ``/tmp/pytest-of-root`` (mode 0700),
    which the unprivileged account PostgreSQL runs as cannot enter.
    """
    path = Path(tempfile.mkdtemp(prefix="lkern-devstack-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
