"""
================================================================
FILE: conftest.py
PATH: /libs/lkern-common/tests/conftest.py
DESCRIPTION: Fixtures shared by the library's tests: a local Kafka-protocol broker, a dev PKI
VERSION: v1.1.0
UPDATED: 2026-12-02 03:15:00
================================================================
"""

# === IMPORTS ===
from collections.abc import Iterator

import pytest

from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.testing import shared_dev_pki


# === BROKER ===
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """
    A Tansu broker on a free port for the whole test session (memory storage: tests use
    unique topic and group names, never a restart). Its log is in the session's temp folder.
    """
    log_file = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with LocalBroker(port=free_port(), log_file=log_file) as broker:
        yield broker


# === DEVELOPMENT PKI ===
@pytest.fixture(scope="session")
def dev_pki() -> DevPki:
    """A CA with the services' certificates and event keys (as `lkern up` makes them)."""
    return shared_dev_pki()
